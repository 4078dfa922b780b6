"""The report page's inline stylesheet (no web fonts, no network: the system font stack)."""

CSS = """
:root { --ink: #1d2330; --muted: #5b6474; --line: #dfe3ea; --card: #ffffff; --bg: #f3f5f9;
        --accent: #3557d4; --accent-soft: #e8edfc; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.55;
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
header { background: linear-gradient(120deg, #1f2b57 0%, #3557d4 60%, #5c7cf0 100%); color: #fff;
         padding: 40px 0 32px; margin-bottom: 28px; }
header h1 { margin: 0 0 6px; font-size: 2.1rem; letter-spacing: -0.01em; }
header .subtitle { margin: 0; font-size: 1.1rem; opacity: 0.92; }
header .credits-line { margin: 14px 0 0; font-size: 0.85rem; opacity: 0.8; }
header code { background: rgba(255, 255, 255, 0.15); color: #fff; }
main section, nav.toc, .timings { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
         padding: 20px 26px; margin: 0 0 24px; box-shadow: 0 1px 2px rgba(20, 30, 60, 0.05); }
nav.toc h2 { font-size: 1rem; margin: 0 0 8px; text-transform: uppercase; letter-spacing: 0.06em;
             color: var(--muted); }
nav.toc ol { margin: 0; padding-left: 22px; columns: 2 260px; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
section h2 { margin: 0 0 12px; font-size: 1.45rem; padding-bottom: 8px; border-bottom: 2px solid var(--accent-soft); }
section h3 { margin: 18px 0 8px; font-size: 1.05rem; color: var(--muted); font-weight: 600; }
p { margin: 0 0 12px; }
code { font: 0.88em ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace;
       background: #eef1f6; padding: 1px 5px; border-radius: 4px; }
figure { margin: 0; }
figure.single { margin: 12px 0 18px; text-align: center; }
figure.single img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px;
                    background: #fff; }
img.pixel { image-rendering: pixelated; image-rendering: crisp-edges; }
figcaption { font-size: 0.88rem; color: var(--muted); margin-top: 6px; text-align: center; }
.row { margin: 8px 0 16px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 14px; }
figure.media { background: #f8f9fc; border: 1px solid var(--line); border-radius: 8px; padding: 10px;
               display: flex; flex-direction: column; align-items: center; justify-content: center; }
figure.media img { max-width: 100%; height: auto; border-radius: 4px; }
figure.media video { width: 100%; height: auto; border-radius: 4px; background: #000; image-rendering: pixelated; }
figure.media audio { width: 100%; }
.table-wrap { overflow-x: auto; margin: 10px 0 18px; }
table { border-collapse: collapse; width: auto; min-width: 50%; font-size: 0.93rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 0 0 6px; color: var(--ink); }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--accent-soft); color: #1f2b57; font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfd; }
tbody tr:hover td { background: #f0f3fb; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.timings table { min-width: 60%; }
.timings td.bar { width: 30%; }
.timings td.bar span { display: block; height: 10px; border-radius: 5px; background: var(--accent); min-width: 2px; }
.timings tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
.missing { background: #fff4f2; color: #a1321f; border: 1px dashed #e3a598; border-radius: 6px;
           padding: 14px; font-size: 0.9rem; }
footer { border-top: 1px solid var(--line); background: #fff; padding: 18px 0 28px; margin-top: 12px;
         color: var(--muted); font-size: 0.9rem; }
footer h2 { font-size: 1rem; color: var(--ink); margin: 8px 0 6px; }
footer ul { margin: 0 0 10px; padding-left: 20px; }
footer .made { margin: 10px 0 0; }
"""

__all__ = ["CSS"]
