"""Check a report page in headless Chromium and save a full-page screenshot.

    python scripts/screenshot_report.py runs/x/index.html shot.png

Prints each problem found (images that did not load, audio / video the browser cannot play, no table,
console errors) and exits 1 when there is any, 0 when the page is good (see `vqfuse.report.browser`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index_html", type=Path, help="the report page (index.html)")
    parser.add_argument("out_png", type=Path, help="where the full-page screenshot goes")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for media metadata")
    args = parser.parse_args(argv)

    from vqfuse.report.browser import check_report

    try:
        problems = check_report(args.index_html, args.out_png, timeout=args.timeout)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"problem: {p}")
    print(f"{'ok' if not problems else f'{len(problems)} problem(s)'}; screenshot: {args.out_png}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
