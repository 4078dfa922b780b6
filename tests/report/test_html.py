import re

import pytest

from tests.report.conftest import write_media
from vqfuse.report import Media, MissingMediaError, Report, Table, load_report, write_report
from vqfuse.report.html import rebase


def test_all_text_is_escaped(tmp_path):
    evil = '<script>alert("x")</script> & "quotes"'
    rep = Report(title=evil, subtitle=evil, credits=[evil])
    sec = rep.add_section(evil, text=evil + " with `code <b>`")
    sec.add_table(Table(caption=evil, header=[evil], rows=[[evil]]))
    page = write_report(rep, tmp_path).read_text()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "<code>code &lt;b&gt;</code>" in page  # backticks still become code, its content escaped
    assert load_report(tmp_path).title == evil


def test_page_structure_and_media_tags(tmp_path):
    paths = write_media(tmp_path)
    rep = Report(title="t", subtitle="s", credits=["Emoji: OpenMoji, CC BY-SA 4.0"])
    sec = rep.add_section("Images and sound", text="p")
    sec.add_image(paths["image"], caption="grid")
    sec.add_media_row("row", [Media("audio", paths["audio"], "a"), Media("video", paths["video"], "v")])
    sec.add_table(Table(header=["model", "PSNR"], rows=[["vqfuse", 27.123456], ["WebP", 26.7]]))
    rep.add_section("Second")
    rep.timings += [("image", 42.0), ("audio", 3.5)]
    page = write_report(rep, tmp_path).read_text()
    assert '<audio controls preload="auto" src="media/tone.wav">' in page
    assert '<video controls muted loop preload="auto" src="media/clip.webm">' in page
    assert 'src="media/grid.png"' in page and 'class="pixel"' in page  # a 40 px wide image is scaled up
    assert '<td class="num">27.12</td>' in page  # floats to 4 significant digits, numbers right-aligned
    assert page.count("OpenMoji") == 2  # header and footer
    assert 'href="#s1-images-and-sound"' in page and 'id="s1-images-and-sound"' in page
    assert 'href="#s2-second"' in page and "time per stage" in page and "45.5" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page


def test_a_missing_media_file_is_an_error_naming_it(tmp_path):
    rep = Report(title="t")
    rep.add_section("Pictures").add_image("gone/missing.png")
    with pytest.raises(MissingMediaError, match=r"gone/missing\.png: media file missing .*section 'Pictures'"):
        write_report(rep, tmp_path)
    assert not (tmp_path / "index.html").exists() and not (tmp_path / "report.json").exists()
    page = write_report(rep, tmp_path, on_missing="note").read_text()
    assert 'class="missing"' in page and "gone/missing.png" in page and "<img" not in page


def test_paths_are_url_encoded(tmp_path):
    (tmp_path / "a b#c.png").write_bytes(b"not really a png")
    rep = Report(title="t")
    rep.add_section("x").add_image("a b#c.png")
    page = write_report(rep, tmp_path).read_text()
    assert 'src="a%20b%23c.png"' in page


def test_rebase_points_paths_from_another_folder(tmp_path):
    paths = write_media(tmp_path / "run")
    rep = Report(title="t")
    rep.add_section("x").add_media_row("", [Media("audio", paths["audio"])])
    moved = rebase(rep, tmp_path / "run", tmp_path / "elsewhere" / "deep")
    assert moved.sections[0].blocks[0].items[0].path == "../../run/media/tone.wav"
    page = write_report(moved, tmp_path / "elsewhere" / "deep").read_text()
    assert re.search(r'src="\.\./\.\./run/media/tone\.wav"', page)
    assert rep.sections[0].blocks[0].items[0].path == "media/tone.wav"  # the original is unchanged
