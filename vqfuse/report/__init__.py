"""Static HTML reports: what a run did, its curves, previews and metrics, in one page that opens from disk.

    from vqfuse.report import Report, Section, Media, Table, write_report, load_report, report_for_run
    rep = Report(title="vqfuse demo", subtitle="...", credits=["Emoji: OpenMoji, CC BY-SA 4.0"])
    sec = rep.add_section("Images", text="one paragraph")
    sec.add_image("image/grid.png", caption="held-out input | reconstruction")   # relative to the report dir
    sec.add_media_row("clip 0", [Media("audio", "speech/clip0.wav", "original")])
    sec.add_table(Table(caption="held-out metrics", header=["model", "PSNR"], rows=[["vqfuse", 27.1]]))
    write_report(rep, out_dir)   # out_dir/report.json + out_dir/index.html

- `model.py`: the content (Report, Section, blocks; JSON dicts; Table.from_markdown).
- `html.py`: the page (inline CSS, no script, escaped text); write_report / load_report. A media file that
  is missing when writing raises MissingMediaError naming it (or, with on_missing="note", shows a note).
- `plots.py`: training curves, codebook usage, generic lines (matplotlib Agg, PNG).
- `media.py`: report videos are WebM (VP9): `write_report_video(frames, path, fps)`; see its docstring for
  what was checked in Chromium.
- `runs.py` / `parts.py`: `report_for_run(run_dir)` for tokenizer and fusion runs; `leave_report` for the
  trainers. `browser.py`: `check_report` opens a page in headless Chromium and lists what is broken.
"""

from vqfuse.report.html import MissingMediaError, load_report, write_report
from vqfuse.report.media import write_report_video
from vqfuse.report.model import Media, Report, Section, Table
from vqfuse.report.runs import report_for_run

__all__ = [
    "Report",
    "Section",
    "Media",
    "Table",
    "write_report",
    "load_report",
    "report_for_run",
    "write_report_video",
    "MissingMediaError",
]
