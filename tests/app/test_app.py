"""The web page (app.py) served by a real process and driven by a real headless browser.

Two tiny models (sc and mmsc, one training step each, trained by train.py) are served by
``python app.py`` in a subprocess on a free port. Chromium (Debian's, which ``make browser``
installs; Playwright from PyPI drives it) opens the page with every request that does not go to
this machine blocked and recorded, uploads images, downloads the translation and compares it with
the one the Translator API gives in this process. Gradio's Python client talks to the same server.
The server runs under an audit hook that records every host name it looks up or connects to: the
last test checks that it looked up none but this machine's (no analytics, no version check).
"""

from __future__ import annotations

import io
import os
import re
import struct
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
import train as train_script
from helpers import (
    MMSC_SMALL,
    ROOT,
    TINY,
    load_script,
    photo_pan,
    run_script,
    write_clip,
    write_images,
    write_unaligned,
)
from util.browser import LOCAL_HOSTS, OfflinePage, chromium_path, running_server
from util.errors import UserError

MAX_PIXELS = 4000  # the server's --max_pixels: a 64x64 upload (4096 pixels) is refused
INPUT_SIZE = (70, 45)  # (W, H) of the uploaded photo: not a multiple of any network stride

# Runs app.py as ``python <this> app.py ARGS`` with an audit hook that writes every host it looks up or
# connects to (other than this machine) to the file named by APP_TEST_HOSTS_LOG.
AUDIT_RUNNER = """
import os, runpy, sys
log = open(os.environ["APP_TEST_HOSTS_LOG"], "a", buffering=1)
def hook(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host not in {local!r}:
        log.write(f"{{event}} {{host}}\\n")
sys.addaudithook(hook)
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # as `python app.py` would have it
runpy.run_path(sys.argv[0], run_name="__main__")
""".format(local=LOCAL_HOSTS)


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A checkpoints folder with two tiny one-step runs of train.py: 'sc' and 'mmsc'."""
    data = write_unaligned(tmp_path_factory.mktemp("app_data"), 2)
    checkpoints = tmp_path_factory.mktemp("app_checkpoints")
    for name, extra in (("sc", ["--model", "sc"]), ("mmsc", MMSC_SMALL)):
        argv = ["--dataroot", data, "--name", name, "--checkpoints_dir", checkpoints, "--max_iters", "1", *TINY, *extra]
        with pytest.MonkeyPatch.context() as monkeypatch:
            assert run_script(train_script, argv, monkeypatch) == 0
    return checkpoints


@pytest.fixture(scope="module")
def translators(runs) -> dict:
    """The same two models loaded in this process through the Translator API."""
    return app.load_translators(["sc", "mmsc"], checkpoints_dir=str(runs))


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    """``python app.py --name sc --name mmsc`` on a free port, under the audit hook; yields (url, hosts log)."""
    folder = tmp_path_factory.mktemp("app_server")
    runner = folder / "audit_runner.py"
    runner.write_text(AUDIT_RUNNER)
    hosts_log = folder / "hosts.log"
    hosts_log.write_text("")
    command = [
        sys.executable,
        str(runner),
        str(ROOT / "app.py"),
        "--name",
        "sc",
        "--name",
        "mmsc",
        "--checkpoints_dir",
        str(runs),
        "--max_pixels",
        str(MAX_PIXELS),
    ]
    env = {**clean_env(), "APP_TEST_HOSTS_LOG": str(hosts_log)}
    with running_server(command, cwd=ROOT, env=env, folder=folder) as url:
        yield url, hosts_log


def clean_env() -> dict:
    """This environment without any GRADIO_ setting (app.py itself must turn the analytics off)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield chromium
        chromium.close()


class AppPage(OfflinePage):
    """The offline page, plus the download button and the error messages."""

    def download_output(self) -> Image.Image:
        """The translation as the page's download button saves it."""
        with self.page.expect_download() as download:
            self.page.locator("#output-image [aria-label=Download]").click()
        return Image.open(download.value.path()).copy()

    def toast(self, needle: str) -> str:
        """The text of the error message in the page that contains ``needle`` (waits for it)."""
        message = self.page.locator(".toast-body", has_text=needle).first
        message.wait_for(timeout=30_000)
        return message.inner_text()


@pytest.fixture
def page(browser, server):
    page = AppPage(browser, server[0])
    yield page
    page.page.close()
    assert page.outside == [], f"the page asked for outside resources: {page.outside}"


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A random RGB photo of INPUT_SIZE, as a PNG file."""
    folder = tmp_path_factory.mktemp("app_inputs")
    write_images(folder, 1, size=(INPUT_SIZE[1], INPUT_SIZE[0]), seed=7)
    return folder / "img_0.png"


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


# ---- the page in a browser -----------------------------------------------------------------------
@pytest.mark.slow
def test_page_translates_at_the_inputs_size_with_outside_requests_blocked(page, photo, translators):
    sc = translators["sc"]
    assert sc.describe() in page.page.locator("#model-info").inner_text()
    status = page.status_after(lambda: page.upload("#input-image", photo))
    assert status.startswith(f"{INPUT_SIZE[0]}x{INPUT_SIZE[1]}: translated in ")
    assert page.output_size() == INPUT_SIZE  # as the browser decoded it
    downloaded = page.download_output()
    assert downloaded.size == INPUT_SIZE
    assert same_pixels(downloaded, sc.translate(Image.open(photo)))  # the API's translation, unaltered


@pytest.mark.slow
def test_mmsc_page_two_seeds_differ_the_gallery_has_every_style_and_a_style_image_guides(
    page, photo, translators, tmp_path
):
    mmsc = translators["mmsc"]
    style = tmp_path / "style.png"
    write_images(tmp_path, 1, size=(36, 36), seed=3)
    (tmp_path / "img_0.png").rename(style)
    pg = page.page
    pg.locator("#model input").click()
    pg.get_by_role("option", name="mmsc").click()
    pg.locator("#model-info", has_text=mmsc.describe()).wait_for()
    pg.locator("#n-styles input[type=number]").fill("3")
    pg.locator("#seed input").fill("1")
    first = page.status_after(lambda: page.upload("#input-image", photo))
    assert "3 translations (seed 1)" in first
    expected = mmsc.translate(Image.open(photo), n_styles=3, seed=1)
    gallery = [
        Image.open(io.BytesIO(pg.request.get(img.get_attribute("src")).body()))
        for img in pg.locator("#gallery .thumbnail-item img").all()
    ]
    assert len(gallery) == 3 and all(same_pixels(a, b) for a, b in zip(gallery, expected))
    one = page.download_output()
    assert one.size == INPUT_SIZE and same_pixels(one, expected[0])

    pg.locator("#seed input").fill("2")
    second = page.status_after(lambda: pg.locator("#translate").click(), previous=first)
    assert "3 translations (seed 2)" in second
    two = page.download_output()
    assert two.size == INPUT_SIZE
    assert not same_pixels(one, two)

    page.upload("#style-image", style)  # example-guided: one output, in the style image's style
    third = page.status_after(lambda: pg.locator("#translate").click(), previous=second)
    assert "1 translation (example-guided)" in third
    guided = page.download_output()
    assert same_pixels(guided, mmsc.translate(Image.open(photo), style_image=Image.open(style))[0])
    assert pg.locator("#gallery .thumbnail-item img").count() == 1


@pytest.mark.slow
def test_bad_uploads_give_a_message_and_the_server_keeps_answering(page, photo, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is text, not a PNG")
    page.upload("#input-image", not_an_image)
    assert "notes.png: not an image" in page.toast("not an image")

    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(big)
    page.upload("#input-image", big)
    message = page.toast("at most")
    assert "64x64 is 4,096 pixels" in message and f"at most {MAX_PIXELS:,}" in message

    status = page.status_after(lambda: page.upload("#input-image", photo))
    assert status.startswith(f"{INPUT_SIZE[0]}x{INPUT_SIZE[1]}: translated")


# ---- Gradio's Python client ----------------------------------------------------------------------
@pytest.mark.slow
def test_python_client_translates_at_full_size(server, photo, translators):
    from gradio_client import Client, handle_file

    client = Client(server[0], verbose=False)
    output, gallery, status = client.predict("sc", handle_file(str(photo)), 1, 0, None, api_name="/translate")
    assert same_pixels(Image.open(output), translators["sc"].translate(Image.open(photo)))
    outputs = {}
    for seed in (3, 4):
        output, gallery, status = client.predict("mmsc", handle_file(str(photo)), 2, seed, None, api_name="/translate")
        assert len(gallery) == 2 and f"(seed {seed})" in status
        outputs[seed] = Image.open(output)
        assert outputs[seed].size == INPUT_SIZE
    assert not same_pixels(outputs[3], outputs[4])


@pytest.mark.slow
def test_python_client_translates_a_clip_in_the_video_tab(server, tmp_path):
    from gradio_client import Client, handle_file

    clip = tmp_path / "clip.mp4"
    write_clip(clip, photo_pan(6, 2))
    output, status = Client(server[0], verbose=False).predict("sc", handle_file(str(clip)), api_name="/translate_video")
    path = output["video"] if isinstance(output, dict) else output
    import av

    with av.open(path) as translated:
        assert len(list(translated.decode(video=0))) == 6
    assert status.startswith("96x64: 6 frames translated")


def test_the_video_tab_translates_a_clip_with_its_sound_up_to_the_frame_cap(translators, tmp_path):
    import av

    clip = tmp_path / "clip.mp4"
    write_clip(clip, photo_pan(7, 2))
    handler = app.VideoHandler(translators, max_frames=5, max_side=None, error=UserError, lock=threading.Lock())
    output, status = handler("sc", {"path": str(clip)})
    with av.open(output) as translated:
        assert len(list(translated.decode(video=0))) == 5 and translated.streams.audio
    assert status.startswith("96x64: 5 frames translated (the first 5 of 7: app.py --max_video_frames)")
    with pytest.raises(UserError, match="gives several translations per frame"):
        handler("mmsc", {"path": str(clip)})
    with pytest.raises(UserError, match="upload a clip first"):
        handler("sc", None)


@pytest.mark.slow
def test_the_server_looked_up_no_outside_host(server):
    """After everything above: the server process never looked up or connected to another machine."""
    assert server[1].read_text() == ""


# ---- the Hugging Face Space folder ----------------------------------------------------------------
def space_card(folder: Path) -> dict:
    """The YAML header of a Space's README.md as {key: value} (flat 'key: value' lines)."""
    header = (folder / "README.md").read_text().split("---\n")[1]
    return {
        key.strip(): value.strip().strip('"')
        for key, value in (line.split(":", 1) for line in header.splitlines() if line.strip())
    }


def test_the_space_files_are_pinned_and_agree():
    card = space_card(ROOT / "spaces")
    assert card["sdk"] == "gradio" and (ROOT / "spaces" / card["app_file"]).is_file()
    pins = [
        line
        for line in (ROOT / "spaces" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pins and all(re.fullmatch(r"[\w.-]+==[\w.]+", line) for line in pins), pins
    assert f"gradio=={card['sdk_version']}" in pins  # the Space's gradio is the one the page was tested with


def test_the_space_reads_its_model_ids(monkeypatch, tmp_path):
    space_app = load_script("spaces/space_app.py")
    monkeypatch.setattr(space_app, "ID_FILE", tmp_path / "model_id.txt")
    monkeypatch.delenv("MODEL_ID", raising=False)
    with pytest.raises(UserError, match="set the Space variable MODEL_ID"):
        space_app.model_ids()
    space_app.ID_FILE.write_text("owner/from-file\n")
    assert space_app.model_ids() == ["owner/from-file"]
    monkeypatch.setenv("MODEL_ID", "owner/a, owner/b")
    assert space_app.model_ids() == ["owner/a", "owner/b"]


@pytest.mark.slow
def test_the_assembled_space_folder_runs_on_its_own(runs, photo, translators, tmp_path):
    """scripts/make_space.py's folder, started as Spaces starts it (``python space_app.py``, the port from
    GRADIO_SERVER_PORT), without this repository on the path. MODEL_ID names a local run folder: loading
    by Hub id is the Translator's, and downloading is not possible offline."""
    space = tmp_path / "space"
    written = load_script("scripts/make_space.py").make_space("owner/model", space)
    assert (space / "model_id.txt").read_text() == "owner/model\n" and Path("translator.py") in written
    env = {**clean_env(), "MODEL_ID": str(runs / "sc")}
    env.pop("PYTHONPATH", None)
    command = [sys.executable, space_card(space)["app_file"]]
    with running_server(command, cwd=space, env=env, folder=tmp_path) as url:
        from gradio_client import Client, handle_file

        output, _, _ = Client(url, verbose=False).predict(
            str(runs / "sc"), handle_file(str(photo)), 1, 0, None, api_name="/translate"
        )
    assert same_pixels(Image.open(output), translators["sc"].translate(Image.open(photo)))


# ---- without a server ----------------------------------------------------------------------------
def test_missing_gradio_is_one_line_with_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` raise ImportError
    assert run_script(app, ["--name", "anything"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err == f"error: the web page needs gradio, which is not installed: {app.INSTALL_HINT}\n"
    assert (ROOT / "requirements-app.txt").read_text().count("gradio") >= 1


def test_a_wrong_name_is_one_line(tmp_path, monkeypatch, capsys):
    assert run_script(app, ["--name", "no_such_run", "--checkpoints_dir", tmp_path], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no_such_run") and err.count("\n") == 1


class PageError(Exception):
    """Stands in for gr.Error."""


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG file whose header says ``width`` x ``height`` followed by the start of a pixel-data chunk cut
    short: it opens (Pillow reads up to the first IDAT) but cannot be decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    chunk = b"IHDR" + header
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(header))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 1000)
        + b"IDAT"
        + bytes(8)
    )
    return path


def test_read_upload_turns_exif_upright_and_checks_the_size_before_decoding(tmp_path):
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; show the pixels rotated by 90 degrees
    Image.new("RGB", (40, 24), (200, 10, 10)).save(rotated, exif=exif)
    upright = app.read_upload({"path": str(rotated), "orig_name": "rotated.jpg"}, "input image", 10_000, PageError)
    assert upright.size == (24, 40)

    # Refused from the header: decoding this file would fail with "not an image" instead.
    big = png_header_only(tmp_path / "big.png", 9000, 9000)
    with pytest.raises(PageError, match=r"input image big.png: 9000x9000 is 81,000,000 pixels; .* at most 1,000,000"):
        app.read_upload({"path": str(big)}, "input image", 1_000_000, PageError)
    bomb = png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(PageError, match=r"style image bomb.png: too many pixels to open safely"):
        app.read_upload({"path": str(bomb)}, "style image", 1_000_000, PageError)
    with pytest.raises(PageError, match="input image: upload or paste an image first"):
        app.read_upload(None, "input image", 10, PageError)


def test_max_pixels_must_be_positive(capsys):
    assert app.parse_args(["--name", "x"]).max_pixels == app.DEFAULT_MAX_PIXELS
    with pytest.raises(SystemExit):
        app.parse_args(["--name", "x", "--max_pixels", "0"])
    assert "--max_pixels 0: give a positive number of pixels" in capsys.readouterr().err
