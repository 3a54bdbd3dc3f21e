"""Tests for util/logger.py, util/html.py, util/image_io.py and util/plot.py (CPU, tiny images)."""

import base64
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from util.html import HTML
from util.image_io import save_image, tensor2im
from util.logger import Logger
from util.plot import plot_losses

HEADER = re.compile(r"^================ Training Loss \(.+\) ================$")


def _expected_uint8(x: np.ndarray) -> np.ndarray:
    """The documented rounding rule, computed independently in float64 numpy."""
    return np.clip(np.floor((x.astype(np.float64) + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)


def _read_png(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _constant_image(rgb: tuple[float, float, float], size: int = 8) -> torch.Tensor:
    """(1, 3, size, size) tensor in [-1, 1] with one colour."""
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "util.logger" and r.levelno == logging.WARNING]


# ----------------------------------------------------------------------------- image_io


def test_tensor2im_exact_values() -> None:
    special = torch.tensor([-1.0, 0.0, 1.0, -3.0, 3.0, 0.5, -0.5, 1.0 / 255.0], dtype=torch.float32)
    random = torch.rand(3 * 4 * 4 - special.numel(), generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    t = torch.cat([special, random]).view(3, 4, 4)
    out = tensor2im(t)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out, _expected_uint8(t.numpy()).transpose(1, 2, 0))
    # The documented anchor points: -1 -> 0, 0 -> 128 (round half up of 127.5), 1 -> 255, clamping.
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 128 and out[0, 2, 0] == 255
    assert out[0, 3, 0] == 0 and out[1, 0, 0] == 255
    # A batch gives its first image.
    batch = torch.stack([t, -t])
    np.testing.assert_array_equal(tensor2im(batch), out)


def test_tensor2im_grey_to_three_channels() -> None:
    grey = torch.linspace(-1, 1, 36).view(1, 1, 6, 6)
    out = tensor2im(grey)
    assert out.shape == (6, 6, 3)
    expected = _expected_uint8(grey[0, 0].numpy())
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], expected)
    with pytest.raises(ValueError):
        tensor2im(torch.zeros(2, 4, 4))


def test_save_image_exact_and_aspect_ratio(tmp_path: Path) -> None:
    t = torch.rand(3, 8, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1  # H=8, W=16
    plain = str(tmp_path / "sub" / "plain.png")
    save_image(t, plain)
    np.testing.assert_array_equal(_read_png(plain), _expected_uint8(t.numpy()).transpose(1, 2, 0))
    save_image(t, str(tmp_path / "tall.png"), aspect_ratio=2.0)
    save_image(t, str(tmp_path / "wide.png"), aspect_ratio=0.5)
    save_image(t, str(tmp_path / "odd.png"), aspect_ratio=1.3)
    assert _read_png(str(tmp_path / "tall.png")).shape == (16, 16, 3)  # height * 2
    assert _read_png(str(tmp_path / "wide.png")).shape == (8, 32, 3)  # width / 0.5
    assert _read_png(str(tmp_path / "odd.png")).shape == (10, 16, 3)  # round(8 * 1.3)
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    save_image(grey, str(tmp_path / "grey.png"))
    np.testing.assert_array_equal(_read_png(str(tmp_path / "grey.png")), np.repeat(grey[:, :, None], 3, axis=2))
    # Atomic writes leave no temporary files behind.
    assert sorted(os.listdir(tmp_path)) == ["grey.png", "odd.png", "sub", "tall.png", "wide.png"]
    assert os.listdir(tmp_path / "sub") == ["plain.png"]


# ----------------------------------------------------------------------------- html / plot


def test_html_refresh_only_when_asked(tmp_path: Path) -> None:
    page = HTML(str(tmp_path / "a"), "title A")
    page.add_header("hello")
    page.add_images(["images/x.png"], ["x"], ["images/x.png"], width=64)
    page.save()
    text = (tmp_path / "a" / "index.html").read_text()
    assert "refresh" not in text.lower()
    assert '<img src="images/x.png" style="width:64px">' in text and "<h3>hello</h3>" in text
    assert page.get_image_dir() == str(tmp_path / "a" / "images") and os.path.isdir(page.get_image_dir())
    page = HTML(str(tmp_path / "b"), "title B", refresh=5)
    page.save()
    assert '<meta content="5" http-equiv="refresh">' in (tmp_path / "b" / "index.html").read_text()


def test_plot_losses_png_and_log_option(tmp_path: Path) -> None:
    history = {"G": [(1.0 + i / 10, 2.0**-i) for i in range(10)], "D": [(1.0 + i / 10, 0.5) for i in range(10)]}
    plot_losses(history, str(tmp_path / "lin.png"), "t")
    plot_losses(history, str(tmp_path / "log.png"), "t", log_y=True)
    linear, logarithmic = _read_png(str(tmp_path / "lin.png")), _read_png(str(tmp_path / "log.png"))
    assert linear.shape == (450, 800, 3)
    assert not np.array_equal(linear, logarithmic)
    # With a non-positive value the log option is ignored: the figure equals the linear one.
    history["D"][0] = (1.0, -0.1)
    plot_losses(history, str(tmp_path / "lin2.png"), "t")
    plot_losses(history, str(tmp_path / "log2.png"), "t", log_y=True)
    np.testing.assert_array_equal(_read_png(str(tmp_path / "lin2.png")), _read_png(str(tmp_path / "log2.png")))
    assert sorted(os.listdir(tmp_path)) == ["lin.png", "lin2.png", "log.png", "log2.png"]


# ----------------------------------------------------------------------------- Logger files


def test_loss_log_format_and_appending(tmp_path: Path) -> None:
    log_dir = str(tmp_path / "exp")
    logger = Logger(log_dir=log_dir, name="exp")
    line = logger.log_scalars(3, 0.5, 400, {"G_GAN": 0.5123, "D_real": torch.tensor(0.25)}, 0.1234, 0.0041)
    assert line == "(epoch: 3, iters: 400, time: 0.123, data: 0.004) G_GAN: 0.512 D_real: 0.250"
    logger.log_scalars(3, 1.0, 800, {"G_GAN": 1.0, "D_real": 2.0}, 0.2, 0.01)
    Logger(log_dir=log_dir, name="exp").log_scalars(4, 0.25, 200, {"G_GAN": 0.0}, 0.0, 0.0)
    lines = open(os.path.join(log_dir, "loss_log.txt")).read().splitlines()
    assert len(lines) == 5
    assert HEADER.match(lines[0]) and HEADER.match(lines[3])
    assert lines[1] == line
    assert lines[2] == "(epoch: 3, iters: 800, time: 0.200, data: 0.010) G_GAN: 1.000 D_real: 2.000"
    assert lines[4] == "(epoch: 4, iters: 200, time: 0.000, data: 0.000) G_GAN: 0.000"
    assert logger.history == {"G_GAN": [(3.5, 0.5123), (4.0, 1.0)], "D_real": [(3.5, 0.25), (4.0, 2.0)]}


def test_html_page_images_and_loss_curve(tmp_path: Path) -> None:
    log_dir = tmp_path / "exp"
    logger = Logger(log_dir=str(log_dir), name="exp", display_winsize=64)
    real = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    grey = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for epoch in (1, 2):
        logger.log_scalars(epoch, 0.5, 10, {"G": 1.0 / epoch, "D": 0.3}, 0.1, 0.0)
        logger.log_images(epoch, {"real_A": real * epoch / 2, "fake_B": grey}, save_result=True)
    logger.log_images(3, {"real_A": real}, save_result=False)
    images = log_dir / "web" / "images"
    assert sorted(os.listdir(images)) == [
        "epoch001_fake_B.png",
        "epoch001_real_A.png",
        "epoch002_fake_B.png",
        "epoch002_real_A.png",
        "loss_curve.png",
    ]
    np.testing.assert_array_equal(
        _read_png(str(images / "epoch001_real_A.png")), _expected_uint8(real[0].numpy() / 2).transpose(1, 2, 0)
    )
    np.testing.assert_array_equal(
        _read_png(str(images / "epoch002_fake_B.png")),
        np.repeat(_expected_uint8(grey[0, 0].numpy())[:, :, None], 3, axis=2),
    )
    assert _read_png(str(images / "loss_curve.png")).shape == (450, 800, 3)
    html = (log_dir / "web" / "index.html").read_text()
    assert "http-equiv" not in html and "refresh" not in html.lower()
    expected_order = (
        'src="images/loss_curve.png"',
        "epoch [2]",
        'src="images/epoch002_real_A.png"',
        'src="images/epoch002_fake_B.png"',
        "epoch [1]",
        'src="images/epoch001_real_A.png"',
    )
    order = [html.index(s) for s in expected_order]
    assert order == sorted(order)
    assert "epoch [3]" not in html and 'style="width:64px"' in html


def test_state_dict_survives_resume(tmp_path: Path) -> None:
    log_dir = str(tmp_path / "exp")
    first = Logger(log_dir=log_dir, name="exp")
    first.log_scalars(1, 0.5, 5, {"G": 0.7}, 0.0, 0.0)
    first.log_images(1, {"real_A": _constant_image((0.0, 0.0, 0.0))}, save_result=True)
    torch.save(first.state_dict(), str(tmp_path / "state.pth"))
    second = Logger(log_dir=log_dir, name="exp")
    second.load_state_dict(torch.load(str(tmp_path / "state.pth"), weights_only=True))
    assert second.history == {"G": [(1.5, 0.7)]}
    second.log_scalars(2, 0.5, 5, {"G": 0.6}, 0.0, 0.0)
    second.log_images(2, {"real_A": _constant_image((0.0, 0.0, 0.0))}, save_result=True)
    assert second.history == {"G": [(1.5, 0.7), (2.5, 0.6)]}
    html = open(os.path.join(log_dir, "web", "index.html")).read()
    assert "epoch [2]" in html and "epoch [1]" in html and "epoch001_real_A.png" in html


def test_non_main_process_does_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log_dir = tmp_path / "exp"
    logger = Logger(log_dir=str(log_dir), name="exp", display_id=1, display_port=_free_port(), is_main_process=False)
    assert logger.log_scalars(1, 0.5, 1, {"G": 1.0}, 0.0, 0.0) == ""
    logger.log_images(1, {"real_A": _constant_image((0.0, 0.0, 0.0))}, save_result=True)
    assert not log_dir.exists() and logger.history == {} and _warnings(caplog) == []


# ----------------------------------------------------------------------------- visdom off / missing


def test_visdom_unreachable_warns_once_and_keeps_working(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="util.logger"):
        logger = Logger(
            log_dir=str(tmp_path / "exp"),
            name="exp",
            display_id=1,
            display_server="http://127.0.0.1",
            display_port=port,
        )
        assert time.monotonic() - start < 3.0
        assert not logger.visdom_enabled
        assert logger.log_scalars(1, 0.5, 1, {"G": 1.0}, 0.0, 0.0).endswith("G: 1.000")
        logger.log_images(1, {"real_A": _constant_image((1.0, 0.0, 0.0))}, save_result=True)
    messages = _warnings(caplog)
    assert messages == [
        f"visdom server http://127.0.0.1:{port} not reachable; start it with "
        "`python -m visdom.server` — continuing without it"
    ]
    assert os.path.isfile(tmp_path / "exp" / "web" / "images" / "epoch001_real_A.png")


def test_visdom_not_installed_warns_with_install_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "visdom", None)  # makes `import visdom` raise ImportError
    with caplog.at_level(logging.WARNING, logger="util.logger"):
        logger = Logger(log_dir=str(tmp_path / "exp"), name="exp", display_id=1, display_port=_free_port())
        logger.log_scalars(1, 0.5, 1, {"G": 1.0}, 0.0, 0.0)
    messages = _warnings(caplog)
    assert len(messages) == 1 and not logger.visdom_enabled
    assert 'pip install "setuptools<81" && pip install --no-build-isolation visdom==0.2.4' in messages[0]


def test_display_id_zero_never_imports_visdom(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "visdom", None)
    logger = Logger(log_dir=str(tmp_path / "exp"), name="exp", display_id=0)
    logger.log_scalars(1, 0.5, 1, {"G": 1.0}, 0.0, 0.0)
    assert _warnings(caplog) == [] and not logger.visdom_enabled


# ----------------------------------------------------------------------------- a real visdom server

_SERVER_CODE = (
    "import sys\nfrom visdom.server import run_server\n"
    "sys.argv = ['visdom', '-port', sys.argv[1], '--hostname', '127.0.0.1',"
    " '-env_path', sys.argv[2], '-logging_level', 'WARNING']\nrun_server.main()\n"
)


@pytest.fixture
def visdom_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """A visdom server on a free loopback port (no browser scripts needed), killed afterwards."""
    port = _free_port()
    log_path = tmp_path / "visdom_server.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_CODE, str(port), str(tmp_path / "visdom_env")],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30.0
        while True:
            assert process.poll() is None, f"visdom server exited: {log_path.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"visdom server did not start: {log_path.read_text()}"
                time.sleep(0.2)
        yield process, port
    finally:
        process.kill()
        process.wait(timeout=10)


def _decode_png_data_url(src: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :]))) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.slow  # starts processes
def test_real_visdom_server_receives_losses_and_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, visdom_server: tuple[subprocess.Popen, int]
) -> None:
    import visdom

    process, port = visdom_server
    env = "logger_test"
    with caplog.at_level(logging.WARNING, logger="util.logger"):
        logger = Logger(
            log_dir=str(tmp_path / "exp"),
            name="exp",
            display_id=1,
            display_server="http://127.0.0.1",
            display_port=port,
            display_env=env,
            display_ncols=2,
        )
        assert logger.visdom_enabled
        logger.log_scalars(1, 0.5, 4, {"G_GAN": 0.5, "D_real": 0.25}, 0.0, 0.0)
        logger.log_scalars(1, 1.0, 8, {"G_GAN": 0.4, "D_real": 0.125}, 0.0, 0.0)
        colours = {"real_A": (1.0, -1.0, -1.0), "fake_B": (-1.0, 1.0, -1.0), "rec_A": (0.0, 0.0, 1.0)}
        logger.log_images(1, {label: _constant_image(rgb) for label, rgb in colours.items()}, save_result=False)
    assert _warnings(caplog) == []

    with warnings.catch_warnings():  # visdom's own client calls the deprecated logger.warn
        warnings.simplefilter("ignore", DeprecationWarning)
        client = visdom.Visdom(server="http://127.0.0.1", port=port, raise_exceptions=True, use_incoming_socket=False)
    windows = json.loads(client.get_window_data(env=env))
    assert set(windows) == {"1", "2", "3", "4"}
    traces = {trace["name"]: trace for trace in windows["1"]["content"]["data"]}
    assert set(traces) == {"G_GAN", "D_real"}
    assert traces["G_GAN"]["x"] == [1.5, 2.0] and traces["G_GAN"]["y"] == [0.5, 0.4]
    assert traces["D_real"]["x"] == [1.5, 2.0] and traces["D_real"]["y"] == [0.25, 0.125]
    grid = _decode_png_data_url(windows["2"]["content"]["src"])
    cell = 8 + 2 * 2  # image size plus visdom's padding on both sides
    assert grid.shape == (2 * cell, 2 * cell, 3)  # 3 images, 2 per row
    for index, rgb in enumerate(colours.values()):
        row, col = divmod(index, 2)
        expected = _expected_uint8(np.array(rgb))
        np.testing.assert_array_equal(grid[row * cell + cell // 2, col * cell + cell // 2], expected)
    labels_html, losses_html = windows["3"]["content"], windows["4"]["content"]
    assert all(f"<td>{label}</td>" in labels_html for label in colours)
    assert "<td>G_GAN</td><td>0.4000</td>" in losses_html and "<td>D_real</td><td>0.1250</td>" in losses_html

    # The server goes away: one warning, visdom switches off, logging goes on.
    process.kill()
    process.wait(timeout=10)
    with caplog.at_level(logging.WARNING, logger="util.logger"):
        line = logger.log_scalars(2, 0.5, 4, {"G_GAN": 0.3, "D_real": 0.1}, 0.0, 0.0)
        logger.log_scalars(2, 1.0, 8, {"G_GAN": 0.2, "D_real": 0.1}, 0.0, 0.0)
        logger.log_images(2, {"real_A": _constant_image((0.0, 0.0, 0.0))}, save_result=True)
    messages = _warnings(caplog)
    assert len(messages) == 1 and "stopped answering" in messages[0] and not logger.visdom_enabled
    assert line.endswith("G_GAN: 0.300 D_real: 0.100")
    assert os.path.isfile(tmp_path / "exp" / "web" / "images" / "epoch002_real_A.png")
