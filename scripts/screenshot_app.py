"""Screenshot the web page (app.py) with a real translation, in headless chromium with the internet blocked.

    python scripts/screenshot_app.py --name demo_photo2painting \
        --image datasets/photo2painting/testA/monarch_0.jpg --out docs/web_app.png

Starts ``python app.py --name NAME`` on a free port, opens the page in Debian's chromium (Playwright drives
it; ``make browser`` installs it), aborting every request that does not go to this machine, uploads
``--image``, waits for the translation and saves a full-page PNG. Prints the status line of the page
and the outside requests it made (none: the page needs nothing from the internet). The tests
(tests/app/test_app.py) use the same util/browser.py.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from options.base_options import OptionParser
from util.browser import OfflinePage, chromium_path, running_server
from util.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = OptionParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="demo_photo2painting", help="the model, as app.py --name takes it")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where run names are looked up")
    parser.add_argument("--image", default="datasets/photo2painting/testA/monarch_0.jpg", help="the image to upload")
    parser.add_argument("--out", default="docs/web_app.png", help="the screenshot (PNG)")
    parser.add_argument("--width", type=int, default=1100, help="browser window width in pixels")
    args = parser.parse_args()
    if not Path(args.image).is_file():
        raise UserError(f"--image {args.image}: no such file")
    from playwright.sync_api import sync_playwright

    command = [sys.executable, str(ROOT / "app.py"), "--name", args.name, "--checkpoints_dir", args.checkpoints_dir]
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            running_server(command, cwd=ROOT, env=dict(os.environ), folder=Path(folder)) as url,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
            page = OfflinePage(browser, url, viewport={"width": args.width, "height": 700})
            status = page.status_after(lambda: page.upload("#input-image", Path(args.image)))
            page.output_size()
            page.page.screenshot(path=args.out, full_page=True)
            browser.close()
    except RuntimeError as exc:
        raise UserError(f"app.py --name {args.name} did not start: {exc}") from None
    print(f"status: {status}")
    print(f"outside requests blocked: {len(page.outside)} {page.outside}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
