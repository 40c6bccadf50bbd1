#!/usr/bin/env python
"""
Open a report.html (or a run's index.html) from disk in headless Chromium, press keys, save a
screenshot, and list what the page reported as errors (exit status 1 if any).

    tools/screenshot_report.py output/demo/eval/test/report.html --view images --keys j \\
        --output docs/images/report_html.png
"""

import argparse
import logging
import sys

from trashpole.cli import add_checkout_to_path

add_checkout_to_path(__file__)  # the browser driver lives in benchmarks/, not installed
from benchmarks.browser import HeadlessChromium  # noqa: E402

logger = logging.getLogger("trashpole.screenshot_report")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("page", help="report.html or index.html")
    p.add_argument("--output", required=True, help="PNG to write")
    p.add_argument("--view", default="", help="the page's tab: metrics or images (a #fragment)")
    p.add_argument("--keys", nargs="*", default=[], help="keys to press first, e.g. j j Enter")
    p.add_argument("--width", type=int, default=1280, help="viewport width, CSS pixels")
    p.add_argument("--height", type=int, default=900, help="viewport height, CSS pixels")
    p.add_argument("--full-page", action="store_true", help="the whole page, not the viewport")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = args.page + (f"#{args.view}" if args.view else "")
    with HeadlessChromium(width=args.width, height=args.height) as browser:
        page = browser.open(url)
        if page.evaluate("document.getElementById('report-data') !== null"):
            page.wait_until("document.body.dataset.ready === 'true'")
        for key in args.keys:
            page.press(key)
        page.wait_for_visible_images()
        page.screenshot(args.output, full_page=args.full_page)
        errors = page.errors()
    logger.info("%s: loaded in %.2f s, screenshot %s", args.page, page.load_s, args.output)
    for error in errors:
        logger.error("page error: %s", error)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
