import json

import pytest

from vqfuse.cli import main
from vqfuse.report import Report, load_report, write_report

pytestmark = pytest.mark.usefixtures("single_thread")


def test_report_of_a_run_and_re_rendering(tokenizer_run, tmp_path, capsys):
    run = tokenizer_run
    (run / "index.html").unlink()
    assert main(["report", str(run)]) == 0  # holds report.json: re-rendered from it
    assert capsys.readouterr().out.strip() == str(run / "index.html")
    assert (run / "index.html").is_file()

    out = tmp_path / "copy"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    media = [p for s in load_report(out).sections for p in s.media_paths()]
    assert media and all(p.startswith("../") and (out / p).resolve().is_file() for p in media)

    fresh = tmp_path / "fresh"
    assert main(["report", str(run), "--rebuild", "--out", str(fresh)]) == 0
    assert (fresh / "report" / "code-usage.png").is_file()  # built anew: its own plots


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'}: no such directory"

    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path}: not a run directory") and "\n" not in err

    (tmp_path / "report.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'report.json'}: cannot read the report")

    rep = Report(title="t")
    rep.add_section("s").add_image("x.png")
    (tmp_path / "x.png").write_bytes(b"png")
    write_report(rep, tmp_path)
    (tmp_path / "x.png").unlink()
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "x.png: media file missing" in err and err.count("\n") == 1
    assert json.loads((tmp_path / "report.json").read_text())["title"] == "t"  # left as it was
