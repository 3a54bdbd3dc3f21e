"""A served web page in a real headless browser, offline: the server process, Debian's chromium, and a
Playwright page on which every request leaving this machine is aborted (scripts/screenshot_app.py and the
web page's tests use it; Playwright itself comes from requirements-app.txt)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from util.errors import UserError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    """A TCP port no process listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_server(command: list[str], *, cwd: Path, env: dict, folder: Path, timeout: float = 180) -> Iterator[str]:
    """Run the Gradio server ``command`` until the block ends; yields its URL once it answers.

    The port goes in GRADIO_SERVER_PORT (app.py's --server_port default); the server's output goes to
    ``folder``/server.log and Gradio's cache to ``folder``/gradio_cache. RuntimeError (with that output)
    when the server exits early or does not answer within ``timeout`` seconds.
    """
    port = free_port()
    log_path = folder / "server.log"
    env = {
        **env,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(folder / "gradio_cache"),
        "PYTHONUNBUFFERED": "1",
    }
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not answers(url):
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer in {timeout:.0f} s:\n{log_path.read_text()}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def chromium_path() -> str:
    """Debian's chromium ($CHROMIUM overrides), or a UserError saying how to install it."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        raise UserError("no chromium on PATH: `make browser` installs Debian's (apt-get install chromium)")
    return path


class OfflinePage:
    """A Playwright page on which every request that leaves this machine is aborted and recorded in
    ``outside``."""

    def __init__(self, browser: Any, url: str, **options: Any) -> None:
        self.outside: list[str] = []
        self.page = browser.new_page(accept_downloads=True, **options)
        self.page.route("**/*", self._route)
        self.page.goto(url)

    def _route(self, route: Any) -> None:
        url = route.request.url
        host = url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]") if "//" in url else ""
        if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def upload(self, selector: str, path: Path) -> None:
        """Put the file ``path`` into the upload field of the image component ``selector``."""
        self.page.locator(f"{selector} input[type=file]").set_input_files(str(path))

    def status_after(self, action: Callable[[], Any], previous: str = "") -> str:
        """Run ``action`` and wait for the status box to change from ``previous``; its new text."""
        action()
        box = self.page.locator("#status textarea")
        self.page.wait_for_function(
            "([el, old]) => el.value && el.value !== old", arg=[box.element_handle(), previous], timeout=120_000
        )
        return box.input_value()

    def output_size(self) -> tuple[int, int]:
        """(width, height) of the translation the page shows, once the browser has decoded it."""
        image = self.page.locator("#output-image img").element_handle()
        self.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
        return tuple(image.evaluate("img => [img.naturalWidth, img.naturalHeight]"))
