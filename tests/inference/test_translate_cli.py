"""translate.py: a folder of images of every mode the loaders read, at their own sizes; bad files skipped."""

import numpy as np
import pytest
import torch
from PIL import Image

import translate as translate_script
from data.image_folder import load_image
from helpers import run_script
from models.networks import build_generator
from inference import Translator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def generator_file(tmp_path):
    """A small anti-aliased ResNet generator (random weights) as a lone latest_net_G.pth."""
    torch.manual_seed(0)
    net = build_generator(kind="resnet_6blocks", ngf=8)
    path = tmp_path / "gen" / "latest_net_G.pth"
    path.parent.mkdir()
    torch.save(net.state_dict(), path)
    return path


def write_mixed_folder(folder) -> dict[str, tuple[int, int]]:
    """An odd-sized RGB image (in a sub-folder), a grey, an RGBA, a 16-bit grey, a broken PNG and a text file;
    returns relative path -> (width, height) of the readable images."""
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(folder / "sub" / "odd.png")
    Image.fromarray(rng.integers(0, 256, (32, 40), dtype=np.uint8), mode="L").save(folder / "grey.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 34, 4), dtype=np.uint8), mode="RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (29, 31), dtype=np.uint16)).save(folder / "deep.png")
    assert Image.open(folder / "deep.png").mode.startswith("I")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image file name: ignored")
    return {"sub/odd.png": (45, 37), "grey.jpg": (40, 32), "rgba.png": (34, 30), "deep.png": (31, 29)}


def test_folder_of_mixed_images_and_a_broken_file(generator_file, tmp_path, monkeypatch, capsys):
    sizes = write_mixed_folder(tmp_path / "in")
    argv = ["--name", generator_file, "--device", "cpu", tmp_path / "in", tmp_path / "out"]
    assert run_script(translate_script, argv, monkeypatch) == 2
    captured = capsys.readouterr()
    skipped = [line for line in (captured.out + captured.err).splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and str(tmp_path / "in" / "broken.png") in skipped[0]
    assert "error: 1 of 5 files could not be read" in captured.err
    translator = Translator.load(generator_file)
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == sorted(name.rsplit(".", 1)[0] + ".png" for name in sizes)
    for name, size in sizes.items():
        out = Image.open(tmp_path / "out" / (name.rsplit(".", 1)[0] + ".png"))
        assert out.size == size and out.mode == "RGB"
        expected = translator.translate(load_image(str(tmp_path / "in" / name), 3))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))


def test_one_file_to_a_png_name_and_tiles(generator_file, tmp_path, monkeypatch):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (150, 130, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    argv = ["--name", generator_file, "--device", "cpu", tmp_path / "a.jpg", tmp_path / "b.png"]
    assert run_script(translate_script, argv, monkeypatch) == 0
    argv = ["--name", generator_file, "--device", "cpu", "--max_side", "96", tmp_path / "a.jpg", tmp_path / "tiled"]
    assert run_script(translate_script, argv, monkeypatch) == 0
    whole = np.asarray(Image.open(tmp_path / "b.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "a.png")).astype(int)
    assert whole.shape == tiled.shape == (150, 130, 3) and np.abs(whole - tiled).max() <= 1


def test_mistakes_are_one_line(generator_file, tmp_path, monkeypatch, capsys):
    argv = ["--name", generator_file, "--device", "cpu", tmp_path / "missing", tmp_path / "out"]
    assert run_script(translate_script, argv, monkeypatch) == 2
    assert capsys.readouterr().err.strip() == f"error: input: {tmp_path / 'missing'} does not exist"
    argv = ["--name", generator_file, "--device", "cpu", "--n_styles", "3", tmp_path, tmp_path / "out"]
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")
    assert run_script(translate_script, argv, monkeypatch) == 2
    assert "n_styles/style_image" in capsys.readouterr().err


def test_a_folder_in_batches_equals_one_by_one(generator_file, tmp_path, monkeypatch):
    """Seven images, two sizes interleaved: batches of at most 3 consecutive images of one size, the same pixels
    as translating each alone."""
    rng = np.random.default_rng(2)
    sizes = [(48, 40), (48, 40), (48, 40), (48, 40), (36, 44), (48, 40), (36, 44)]
    (tmp_path / "in").mkdir()
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "in" / f"{i}.png")
    batches = []
    original = Translator.translate_batch
    monkeypatch.setattr(
        Translator,
        "translate_batch",
        lambda self, images, **k: batches.append(len(images)) or original(self, images, **k),
    )
    argv = ["--name", generator_file, "--device", "cpu", "--batch", "3", tmp_path / "in", tmp_path / "out"]
    assert run_script(translate_script, argv, monkeypatch) == 0
    assert batches == [3, 1, 1, 1, 1]  # 0-2, 3, then a size change at 4, 5 and 6
    translator = Translator.load(generator_file)
    for i in range(len(sizes)):
        alone = np.asarray(translator.translate(Image.open(tmp_path / "in" / f"{i}.png").convert("RGB"))).astype(int)
        batched = np.asarray(Image.open(tmp_path / "out" / f"{i}.png")).astype(int)
        assert batched.shape == alone.shape and np.abs(batched - alone).max() <= 1


def test_a_decompression_bomb_and_a_bad_memory_option_are_one_line(generator_file, tmp_path, monkeypatch, capsys):
    """A 20000x10000 PNG of a few kilobytes (200 megapixels when decoded) is skipped by name, before decoding."""
    (tmp_path / "in").mkdir()
    Image.new("1", (20000, 10000)).save(tmp_path / "in" / "bomb.png")
    assert (tmp_path / "in" / "bomb.png").stat().st_size < 100_000
    Image.new("RGB", (32, 32), (200, 100, 50)).save(tmp_path / "in" / "fine.png")
    argv = ["--name", generator_file, "--device", "cpu", tmp_path / "in", tmp_path / "out"]
    assert run_script(translate_script, argv, monkeypatch) == 2
    captured = capsys.readouterr()
    skipped = [line for line in (captured.out + captured.err).splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "bomb.png" in skipped[0] and "decompression bomb" in skipped[0]
    assert (tmp_path / "out" / "fine.png").exists() and not (tmp_path / "out" / "bomb.png").exists()
    argv = ["--name", generator_file, "--device", "cpu", "--max_memory", "lots", tmp_path / "in", tmp_path / "o2"]
    assert run_script(translate_script, argv, monkeypatch) == 2
    assert capsys.readouterr().err.strip() == "error: --max_memory lots: give a size such as 1.5G, 800M or 4096"


def test_an_image_beyond_max_memory_is_skipped_by_name(generator_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "small.png")
    from inference.streaming import resident_bytes

    # a first run loads what translate.py needs, so that the budget below measures the images alone
    argv = ["--name", generator_file, "--device", "cpu", tmp_path / "in", tmp_path / "warm"]
    assert run_script(translate_script, argv, monkeypatch) == 0
    Image.new("RGB", (4096, 3072)).save(tmp_path / "in" / "big.png")
    allowed = str(resident_bytes() + (150 << 20))  # the big one's input and output alone need over 400 MiB
    argv = ["--name", generator_file, "--device", "cpu", "--max_memory", allowed, tmp_path / "in", tmp_path / "out"]
    assert run_script(translate_script, argv, monkeypatch) == 2
    captured = capsys.readouterr()
    line = next(line for line in (captured.out + captured.err).splitlines() if line.startswith("skipped:"))
    assert line.startswith("skipped: big.png: max_memory: a 4096x3072 image needs")
    assert (tmp_path / "out" / "small.png").exists()
