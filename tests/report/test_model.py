import json

import numpy as np
import pytest

from vqfuse.report import Media, Report, Table, load_report, write_report
from vqfuse.report.model import Image, MediaRow, Text, markdown_blocks


def _report() -> Report:
    rep = Report(title="vqfuse demo", subtitle="small runs", credits=["Emoji: OpenMoji, CC BY-SA 4.0"])
    sec = rep.add_section("Images: emoji64", text="one paragraph")
    sec.add_text("another paragraph")
    sec.add_image("media/grid.png", caption="held-out input | reconstruction")
    sec.add_media_row("clip 0", [Media("audio", "media/tone.wav", "original"), Media("image", "media/grid.png")])
    sec.add_table(Table(caption="held-out metrics", header=["model", "PSNR", "ok"], rows=[["vqfuse", 27.1, True]]))
    rep.add_section("Empty")
    rep.timings.append(("image", 42.0))
    return rep


def test_round_trip_through_report_json(tmp_path):
    from tests.report.conftest import write_media

    write_media(tmp_path)
    rep = _report()
    page = write_report(rep, tmp_path)
    assert page == tmp_path / "index.html" and page.is_file()
    raw = json.loads((tmp_path / "report.json").read_text())
    assert raw["format"] == "vqfuse-report" and raw["timings"] == [["image", 42.0]]
    back = load_report(tmp_path)
    assert back == rep
    assert back.timings == [("image", 42.0)]
    assert isinstance(back.sections[0].blocks[0], Text) and isinstance(back.sections[0].blocks[2], Image)
    assert isinstance(back.sections[0].blocks[3], MediaRow) and back.sections[0].blocks[4].rows == [
        ["vqfuse", 27.1, True]
    ]


def test_table_cells_become_json_values():
    t = Table(header=["a", "b", "c", "d"], rows=[[np.float32(0.5), np.int64(3), float("nan"), None]])
    assert t.rows == [[0.5, 3, "nan", None]] and type(t.rows[0][1]) is int
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        Table(header=["a", "b"], rows=[["x"]])


def test_media_kind_is_checked():
    with pytest.raises(ValueError, match="media kind"):
        Media("sound", "a.wav")
    assert Media("audio", "sub/a.wav").path == "sub/a.wav"


def test_table_from_markdown_takes_the_first_pipe_table():
    md = (
        "# run: held-out metrics\n\nimage tokenizer trained on `emoji`.\n\n"
        "| metric | value |\n|---|---|\n| psnr | 27.1 |\n| a\\|b | x |\n| short |\n\n"
        "| training | value |\n|---|---|\n| steps | 4 |\n"
    )
    t = Table.from_markdown(md)
    assert t.caption == "run: held-out metrics" and t.header == ["metric", "value"]
    assert t.rows == [["psnr", "27.1"], ["a|b", "x"], ["short", ""]]
    assert Table.from_markdown(md, caption="mine").caption == "mine"
    blocks = markdown_blocks(md)
    assert [type(b).__name__ for b in blocks] == ["Text", "Table", "Table"]
    with pytest.raises(ValueError, match="no markdown pipe table"):
        Table.from_markdown("no table | here\n")


def test_load_report_errors_name_the_file(tmp_path):
    from vqfuse.errors import InputFileError

    with pytest.raises(InputFileError, match="report.json: no such file"):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text('{"format": "other"}')
    with pytest.raises(InputFileError, match="not a valid report"):
        load_report(tmp_path)
