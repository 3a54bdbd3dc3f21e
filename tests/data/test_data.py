"""Tests for the data package: registry, dataset modes, image reading, transforms, loader order."""

import argparse
import glob
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data.base_dataset import BaseDataset
from data.image_folder import IMG_EXTENSIONS, load_image, make_dataset
from data.transforms import check_sizes, color_jitter, get_params, get_transform
from util.errors import UserError

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data")


# ---------------------------------------------------------------- helpers


def make_opt(dataroot: str, **overrides: object) -> argparse.Namespace:
    """Every option a dataset may read, with small sizes."""
    values = dict(
        dataroot=str(dataroot),
        dataset_mode="unaligned",
        phase="train",
        direction="AtoB",
        input_nc=3,
        output_nc=3,
        preprocess="resize_and_crop",
        load_size=24,
        crop_size=16,
        no_flip=False,
        serial_batches=False,
        max_dataset_size=math.inf,
        augment=False,
        batch_size=1,
        num_threads=0,
        is_train=True,
        seed=0,
        gpu_ids=[],
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def textured(width: int, height: int, seed: int, channels: int = 3) -> np.ndarray:
    """A uint8 image with smooth structure plus noise, (H, W, 3) or (H, W)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 127 + 100 * np.sin(xx / 3.0 + seed) * np.cos(yy / 4.0)
    planes = [base + rng.integers(-20, 20, base.shape) + 15 * c for c in range(channels)]
    out = np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)
    return out[..., 0] if channels == 1 else out


def write(path: str, array: np.ndarray) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def unaligned_root(tmp_path: Path, num_a: int = 3, num_b: int = 5, phase: str = "train") -> str:
    for i in range(num_a):
        write(str(tmp_path / f"{phase}A" / f"a{i}.png"), textured(20 + 4 * i, 28, seed=i))
    for i in range(num_b):
        write(str(tmp_path / f"{phase}B" / f"b{i}.jpg"), textured(32, 24 + 2 * i, seed=10 + i))
    return str(tmp_path)


def to_expected(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W[, C]) -> (C, H, W) in [-1, 1], computed independently with numpy."""
    arr = array.astype(np.float64)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr / 127.5 - 1.0).float()


def same(tensor: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal up to float32 rounding of x / 127.5 - 1."""
    return tensor.shape == expected.shape and torch.allclose(tensor, expected, rtol=0, atol=1e-6)


def find_window(image: np.ndarray, crop: np.ndarray) -> list[tuple[int, int, bool]]:
    """Brute force: every (x, y, flipped) where ``crop`` (h, w, C) appears in ``image`` (H, W, C)."""
    hits = []
    h, w = crop.shape[:2]
    for flipped in (False, True):
        target = crop[:, ::-1] if flipped else crop
        for y in range(image.shape[0] - h + 1):
            for x in range(image.shape[1] - w + 1):
                if np.array_equal(image[y : y + h, x : x + w], target):
                    hits.append((x, y, flipped))
    return hits


def as_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> uint8 (H, W, C), exact for values made from uint8."""
    return np.rint((tensor.numpy().transpose(1, 2, 0) + 1.0) * 127.5).astype(np.uint8)


def blobs(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth random colour blobs (H, W, 3) uint8 with no symmetry: bicubic upsampling of 8x8 noise."""
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a = np.argsort(np.argsort(a.ravel())).astype(float)
    ranks_b = np.argsort(np.argsort(b.ravel())).astype(float)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


# ---------------------------------------------------------------- registry


def test_every_dataset_file_is_found_and_listed() -> None:
    files = sorted(
        os.path.basename(p)[: -len("_dataset.py")] for p in glob.glob(os.path.join(DATA_DIR, "*_dataset.py"))
    )
    files.remove("base")
    assert {"aligned", "single", "unaligned", "template"} <= set(files)
    for name in files:
        cls = data.find_dataset_using_name(name)
        assert issubclass(cls, BaseDataset)
        assert cls.__name__.lower() == name.replace("_", "") + "dataset"
    assert data.available_dataset_modes() == [n for n in files if n != "template"]


def test_unknown_dataset_mode_lists_the_choices() -> None:
    with pytest.raises(UserError) as info:
        data.find_dataset_using_name("x")
    modes = ", ".join(data.available_dataset_modes())
    assert str(info.value) == f"--dataset_mode: unknown mode 'x'; choose from {modes}"
    assert all(m in modes for m in ("aligned", "single", "unaligned")) and "template" not in str(info.value)


def test_option_setter_adds_the_modes_flags() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_dataset_size", type=float, default=math.inf)
    parser = data.get_option_setter("template")(parser, True)
    parsed = parser.parse_args([])
    assert parsed.new_dataset_option == 1.0 and parsed.max_dataset_size == 10
    assert data.get_option_setter("unaligned")(parser, True) is parser


# ---------------------------------------------------------------- dataset modes


def test_unaligned_keys_shapes_ranges_and_b_choice(tmp_path: Path) -> None:
    root = unaligned_root(tmp_path, num_a=3, num_b=5)
    dataset = data.find_dataset_using_name("unaligned")(make_opt(root, input_nc=1, output_nc=3))
    assert len(dataset) == 5
    b_indices = []
    for i in range(len(dataset)):
        item = dataset[i]
        assert set(item) == {"A", "B", "A_paths", "B_paths"}
        assert item["A"].shape == (1, 16, 16) and item["B"].shape == (3, 16, 16)
        assert item["A"].dtype == torch.float32
        for key in ("A", "B"):
            assert item[key].min() >= -1.0 and item[key].max() <= 1.0 and item[key].std() > 0.05
        assert item["A_paths"] == os.path.join(root, "trainA", f"a{i % 3}.png")
        b_indices.append(int(os.path.basename(item["B_paths"])[1]))
    assert b_indices != [i % 5 for i in range(5)]  # random B, not serial
    serial = data.find_dataset_using_name("unaligned")(make_opt(root, serial_batches=True))
    assert [os.path.basename(serial[i]["B_paths"]) for i in range(5)] == [f"b{i}.jpg" for i in range(5)]


def test_unaligned_btoa_swaps_folders_and_channels(tmp_path: Path) -> None:
    root = unaligned_root(tmp_path, num_a=2, num_b=3)
    dataset = data.find_dataset_using_name("unaligned")(
        make_opt(root, direction="BtoA", input_nc=3, output_nc=1, serial_batches=True)
    )
    item = dataset[1]
    assert item["A_paths"] == os.path.join(root, "trainB", "b1.jpg")
    assert item["B_paths"] == os.path.join(root, "trainA", "a1.png")
    assert item["A"].shape == (3, 16, 16) and item["B"].shape == (1, 16, 16)


def test_crop_takes_an_exact_window_of_the_original(tmp_path: Path) -> None:
    image = textured(30, 26, seed=3)
    write(str(tmp_path / "trainA" / "a.png"), image)
    write(str(tmp_path / "trainB" / "b.png"), image)
    dataset = data.find_dataset_using_name("unaligned")(make_opt(str(tmp_path), preprocess="crop"))
    seen = set()
    for epoch in range(12):
        dataset.set_epoch(epoch)
        hits = find_window(image, as_uint8(dataset[0]["A"]))
        assert hits, "the crop is not a window of the image"
        seen.add(hits[0][2])
    assert seen == {False, True}  # both flips occur


def test_aligned_halves_get_the_same_crop_and_flip(tmp_path: Path) -> None:
    left = textured(26, 30, seed=5)
    write(str(tmp_path / "train" / "ab.png"), np.concatenate([left, 255 - left], axis=1))
    for direction in ("AtoB", "BtoA"):
        opt = make_opt(str(tmp_path), dataset_mode="aligned", direction=direction, augment=True)
        dataset = data.find_dataset_using_name("aligned")(opt)
        for epoch in range(4):
            dataset.set_epoch(epoch)
            item = dataset[0]
            assert set(item) == {"A", "B", "A_aug", "B_aug", "A_paths", "B_paths"}
            assert item["A"].shape == item["B"].shape == item["A_aug"].shape == (3, 16, 16)
            # Bicubic resizing commutes with 255 - x up to rounding.
            assert torch.allclose(item["A"], -item["B"], atol=1.01 / 127.5)
    opt = make_opt(str(tmp_path), dataset_mode="aligned", preprocess="none", no_flip=True)
    item = data.find_dataset_using_name("aligned")(opt)[0]
    assert same(item["A"], to_expected(left)) and same(item["B"], to_expected(255 - left))


def test_single_reads_a_plain_folder_or_the_phase_subfolder(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    for i in range(3):
        write(str(plain / f"img{i}.PNG"), textured(20, 20, seed=i))
    opt = make_opt(str(plain), dataset_mode="single", phase="test", augment=True, input_nc=1)
    dataset = data.find_dataset_using_name("single")(opt)
    item = dataset[2]
    assert len(dataset) == 3 and set(item) == {"A", "A_paths", "A_aug"}
    assert item["A"].shape == item["A_aug"].shape == (1, 16, 16)
    assert item["A_paths"] == str(plain / "img2.PNG")
    root = unaligned_root(tmp_path / "ds", num_a=2, num_b=4, phase="test")
    for direction, folder, count in (("AtoB", "testA", 2), ("BtoA", "testB", 4)):
        opt = make_opt(root, dataset_mode="single", phase="test", direction=direction)
        dataset = data.find_dataset_using_name("single")(opt)
        assert len(dataset) == count and os.path.dirname(dataset[0]["A_paths"]) == os.path.join(root, folder)
    nested = data.find_dataset_using_name("single")(make_opt(str(tmp_path), dataset_mode="single", phase="val"))
    assert len(nested) == 3 + 2 + 4  # no valA: every image below the root
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match=f"--dataroot: {empty} holds no images and {empty}/testA does not exist"):
        data.find_dataset_using_name("single")(make_opt(str(empty), dataset_mode="single", phase="test"))


def test_template_dataset_works(tmp_path: Path) -> None:
    write(str(tmp_path / "train" / "x.png"), textured(24, 24, seed=1))
    item = data.find_dataset_using_name("template")(make_opt(str(tmp_path), output_nc=1))[0]
    assert item["A"].shape == (3, 16, 16) and item["B"].shape == (1, 16, 16)


# ---------------------------------------------------------------- image reading


def test_sixteen_bit_images_scale_to_eight_bit(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    expected = np.rint(values / 65535.0 * 255.0)  # 0, 1, 128, 255
    little = write(str(tmp_path / "g16.png"), values)
    assert Image.open(little).mode == "I;16"
    big = str(tmp_path / "g16b.tif")
    Image.frombytes("I;16B", (4, 1), values.astype(">u2").tobytes()).save(big)
    wide = write(str(tmp_path / "g32.tif"), values.astype(np.int32))
    assert Image.open(wide).mode == "I"
    for path in (little, big, wide):
        grey = load_image(path, 1)
        assert grey.mode == "L" and np.array_equal(np.asarray(grey), expected)
        rgb = np.asarray(load_image(path, 3))
        assert rgb.shape == (1, 4, 3) and all(np.array_equal(rgb[..., c], expected) for c in range(3))


def test_sixteen_bit_white_becomes_plus_one_in_the_dataset(tmp_path: Path) -> None:
    write(str(tmp_path / "trainA" / "a.png"), np.full((23, 37), 65535, dtype=np.uint16))
    write(str(tmp_path / "trainB" / "b.png"), np.zeros((23, 37), dtype=np.uint16))
    item = data.find_dataset_using_name("unaligned")(make_opt(str(tmp_path), input_nc=1, output_nc=3))[0]
    assert torch.all(item["A"] == 1.0) and torch.all(item["B"] == -1.0) and item["B"].shape[0] == 3


def test_palette_rgba_la_cmyk_and_grey(tmp_path: Path) -> None:
    palette = Image.new("P", (3, 1))
    palette.putpalette([200, 30, 10, 0, 90, 250, 5, 5, 5] + [0] * 759)
    palette.putdata([0, 1, 2])
    palette.save(tmp_path / "p.png")
    assert np.array_equal(
        np.asarray(load_image(str(tmp_path / "p.png"), 3)), [[[200, 30, 10], [0, 90, 250], [5, 5, 5]]]
    )
    palette.save(tmp_path / "pt.png", transparency=1)
    assert np.array_equal(
        np.asarray(load_image(str(tmp_path / "pt.png"), 3)), [[[200, 30, 10], [255, 255, 255], [5, 5, 5]]]
    )
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    write(str(tmp_path / "rgba.png"), rgba)
    out = np.asarray(load_image(str(tmp_path / "rgba.png"), 3)).astype(int)
    assert np.array_equal(out[0, :2], [[10, 20, 30], [255, 255, 255]])
    assert np.all(np.abs(out[0, 2] - 127) <= 1)  # half-transparent black over white
    write(str(tmp_path / "la.png"), np.array([[[40, 255], [40, 0]]], dtype=np.uint8))
    la = load_image(str(tmp_path / "la.png"), 1)
    assert la.mode == "L" and np.array_equal(np.asarray(la), [[40, 255]])
    Image.new("CMYK", (2, 2), (0, 255, 0, 0)).save(tmp_path / "c.tif")
    assert np.array_equal(np.asarray(load_image(str(tmp_path / "c.tif"), 3))[0, 0], [255, 0, 255])
    grey = write(str(tmp_path / "g.png"), np.array([[0, 100, 255]], dtype=np.uint8))
    assert np.array_equal(np.asarray(load_image(grey, 3))[0, :, 1], [0, 100, 255])
    rgb = write(str(tmp_path / "rgb.png"), np.array([[[255, 0, 0]]], dtype=np.uint8))
    assert np.asarray(load_image(rgb, 1))[0, 0] == round(0.299 * 255)


def test_make_dataset_finds_all_extensions_recursively(tmp_path: Path) -> None:
    names = [f"x{i}{ext.upper() if i % 2 else ext}" for i, ext in enumerate(IMG_EXTENSIONS)]
    for i, name in enumerate(names):
        sub = tmp_path / ("deep" if i % 3 == 0 else "") / name
        sub.parent.mkdir(exist_ok=True)
        sub.write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    paths = make_dataset(str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == sorted(names) and paths == sorted(paths)
    assert make_dataset(str(tmp_path), max_size=3) == paths[:3]


def test_missing_and_empty_folders_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=f"--dataroot: {missing}/trainA does not exist"):
        data.find_dataset_using_name("unaligned")(make_opt(str(missing)))
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainA" / "readme.txt").write_text("no images")
    with pytest.raises(UserError, match=f"--dataroot: {tmp_path}/trainA has no images \\(jpg, jpeg, png"):
        data.find_dataset_using_name("unaligned")(make_opt(str(tmp_path)))


@pytest.mark.parametrize("num_threads", [0, 2])
def test_unreadable_image_names_the_file(tmp_path: Path, num_threads: int) -> None:
    root = unaligned_root(tmp_path, num_a=2, num_b=2)
    bad = tmp_path / "trainA" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    loader = data.create_dataset(make_opt(root, num_threads=num_threads, batch_size=3))
    with pytest.raises(UserError) as info:
        list(loader)
    message = str(info.value)
    assert message.startswith(f"cannot read image {bad}: ") and "\n" not in message
    assert "Traceback" not in message and type(info.value) is UserError


# ---------------------------------------------------------------- transforms


def test_smaller_than_crop_is_scaled_up(tmp_path: Path) -> None:
    write(str(tmp_path / "trainA" / "a.png"), np.full((12, 20, 3), 77, dtype=np.uint8))
    write(str(tmp_path / "trainB" / "b.png"), textured(10, 40, seed=2))
    for preprocess, load in (("crop", 8), ("resize_and_crop", 32), ("scale_width_and_crop", 32)):
        opt = make_opt(str(tmp_path), preprocess=preprocess, load_size=load, crop_size=32)
        item = data.find_dataset_using_name("unaligned")(opt)[0]
        assert item["A"].shape == item["B"].shape == (3, 32, 32)
        assert torch.allclose(item["A"], torch.full_like(item["A"], 77 / 127.5 - 1), atol=1e-6)
    # The upscaled size keeps the aspect ratio: 12x20 -> 32 high, round(20 * 32 / 12) = 53 wide.
    generator = torch.Generator().manual_seed(0)
    xs = {get_params("crop", 8, 32, (20, 12), generator)["crop_pos"] for _ in range(200)}
    assert {x for x, _ in xs} == set(range(53 - 32 + 1)) and {y for _, y in xs} == {0}


def test_none_keeps_the_exact_size_and_pixels(tmp_path: Path) -> None:
    image = textured(37, 23, seed=4)
    write(str(tmp_path / "trainA" / "a.png"), image)
    write(str(tmp_path / "trainB" / "b.png"), image[:, :, 0])
    opt = make_opt(str(tmp_path), preprocess="none", no_flip=True, output_nc=1)
    item = data.find_dataset_using_name("unaligned")(opt)[0]
    assert same(item["A"], to_expected(image)) and same(item["B"], to_expected(image[:, :, 0]))
    flipped = data.find_dataset_using_name("unaligned")(make_opt(str(tmp_path), preprocess="none"))
    outcomes = set()
    for epoch in range(10):
        flipped.set_epoch(epoch)
        a = flipped[0]["A"]
        outcomes.add(same(a, to_expected(image[:, ::-1].copy())))
        assert same(a, to_expected(image)) or same(a, to_expected(image[:, ::-1].copy()))
    assert outcomes == {False, True}


def test_scale_width_keeps_the_aspect_ratio() -> None:
    transform = get_transform(
        preprocess="scale_width", load_size=24, crop_size=16, channels=3, params=None, no_flip=True
    )
    assert transform(Image.new("RGB", (40, 20))).shape == (3, 12, 24)
    grey = get_transform(preprocess="none", load_size=24, crop_size=16, channels=1, params=None, no_flip=True)
    assert grey(Image.new("RGB", (5, 3), (255, 0, 0))).shape == (1, 3, 5)


def test_crop_larger_than_load_is_rejected_only_when_resizing(tmp_path: Path) -> None:
    root = unaligned_root(tmp_path, num_a=1, num_b=1)
    for preprocess in ("resize_and_crop", "scale_width_and_crop"):
        opt = make_opt(root, preprocess=preprocess, load_size=286, crop_size=300)
        with pytest.raises(
            UserError,
            match=f"--crop_size 300 is larger than --load_size 286; with --preprocess {preprocess} the crop must fit",
        ):
            data.find_dataset_using_name("unaligned")(opt)
    check_sizes("crop", 286, 300)
    with pytest.raises(UserError, match="--preprocess: unknown mode 'zoom'"):
        check_sizes("zoom", 286, 256)


def test_color_jitter_is_seeded_bounded_and_keeps_grey_grey() -> None:
    image = to_expected(textured(20, 20, seed=8))
    outputs = [color_jitter(image, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(outputs[0], outputs[1]) and not torch.allclose(outputs[0], outputs[2])
    assert all(o.min() >= -1 and o.max() <= 1 and o.shape == image.shape for o in outputs)
    grey = image[:1].repeat(3, 1, 1)
    jittered = color_jitter(grey, torch.Generator().manual_seed(3))
    assert torch.allclose(jittered[0], jittered[1], atol=1e-5) and torch.allclose(jittered[1], jittered[2], atol=1e-5)
    one = color_jitter(image[:1], torch.Generator().manual_seed(4))
    assert one.shape == (1, 20, 20) and not torch.allclose(one, image[:1])
    pil = color_jitter(Image.fromarray(textured(20, 20, seed=8)), torch.Generator().manual_seed(1))
    assert isinstance(pil, Image.Image) and pil.size == (20, 20)


@pytest.mark.parametrize("channels", [3, 1])
def test_augmented_copies_are_spatially_aligned(tmp_path: Path, channels: int) -> None:
    # Grey content (R = G = B): hue and saturation leave it alone and brightness / contrast are
    # monotonic, so an aligned copy keeps the pixel ranking while a misaligned one loses it.
    for i in range(2):
        write(str(tmp_path / "trainA" / f"a{i}.png"), blobs(24, 20, seed=i)[..., [0, 0, 0]])
        write(str(tmp_path / "trainB" / f"b{i}.png"), blobs(20, 24, seed=5 + i)[..., [1, 1, 1]])
    opt = make_opt(str(tmp_path), augment=True, input_nc=channels, output_nc=channels)
    dataset = data.find_dataset_using_name("unaligned")(opt)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        item = dataset[epoch % 2]
        for key in ("A", "B"):
            real, aug = item[key].numpy().mean(0), item[key + "_aug"].numpy().mean(0)
            assert item[key + "_aug"].shape == item[key].shape
            assert not np.allclose(real, aug, atol=1e-3)
            aligned = spearman(real, aug)
            assert aligned > 0.95
            assert spearman(real[:, ::-1], aug) < 0.6  # a misaligned copy would not correlate


# ---------------------------------------------------------------- reproducibility and loader


def test_same_seed_epoch_index_gives_the_same_sample(tmp_path: Path) -> None:
    root = unaligned_root(tmp_path, num_a=3, num_b=4)

    def make(**overrides: object) -> BaseDataset:
        return data.find_dataset_using_name("unaligned")(make_opt(root, augment=True, **overrides))

    first, second = make(), make()
    first.set_epoch(3)
    second.set_epoch(3)
    torch.manual_seed(123)  # the global RNG must not matter
    sample = first[2]
    torch.manual_seed(999)
    again = second[2]
    for key in ("A", "B", "A_aug", "B_aug"):
        assert torch.equal(sample[key], again[key])
    second.set_epoch(4)
    assert not torch.equal(sample["A"], second[2]["A"])
    other_seed = make(seed=1)
    other_seed.set_epoch(3)
    assert not torch.equal(sample["A"], other_seed[2]["A"])


def test_loader_order_is_reproducible_and_workers_do_not_matter(tmp_path: Path) -> None:
    root = unaligned_root(tmp_path, num_a=7, num_b=3)

    def epoch_paths(num_threads: int, epoch: int) -> tuple[list[str], torch.Tensor]:
        loader = data.create_dataset(make_opt(root, num_threads=num_threads, batch_size=2))
        loader.set_epoch(epoch)
        batches = list(loader)
        return [p for b in batches for p in b["A_paths"]], torch.cat([b["B"] for b in batches])

    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    paths, images = epoch_paths(0, 5)
    assert torch.equal(states[0], torch.get_rng_state()) and random.getstate() == states[2]
    assert np.array_equal(states[1], np.random.get_state()[1])
    assert sorted(paths) == sorted(make_dataset(os.path.join(root, "trainA")))
    paths_workers, images_workers = epoch_paths(2, 5)
    assert paths == paths_workers and torch.equal(images, images_workers)
    assert epoch_paths(0, 6)[0] != paths
    test_loader = data.create_dataset(make_opt(root, is_train=False, batch_size=3))
    assert [p for b in test_loader for p in b["A_paths"]] == make_dataset(os.path.join(root, "trainA"))


def test_start_batch_equals_slicing_the_full_epoch(tmp_path: Path) -> None:
    root = unaligned_root(tmp_path, num_a=7, num_b=2)
    loader = data.create_dataset(make_opt(root, batch_size=2, augment=True))
    assert len(loader) == 7 and loader.num_batches == 4
    loader.set_epoch(2)
    full = list(loader)
    assert [len(b["A_paths"]) for b in full] == [2, 2, 2, 1]
    loader.set_epoch(2, start_batch=2)
    resumed = list(loader)
    assert len(resumed) == 2
    for got, want in zip(resumed, full[2:], strict=True):
        assert got["A_paths"] == want["A_paths"] and got["B_paths"] == want["B_paths"]
        assert all(torch.equal(got[k], want[k]) for k in ("A", "B", "A_aug", "B_aug"))
    assert len(list(loader)) == 4  # the skip applies to one pass only


def test_persistent_workers_give_the_batches_of_no_workers(tmp_path: Path) -> None:
    # Workers keep their copy of the dataset across epochs: each epoch's crops, flips, B draws and
    # colour jitter must still be that epoch's, as in the main process (0 workers).
    root = unaligned_root(tmp_path, num_a=5, num_b=3)
    keys = ("A", "B", "A_aug", "B_aug")

    def epochs(num_threads: int) -> list[dict]:
        loader = data.create_dataset(make_opt(root, num_threads=num_threads, batch_size=2, augment=True))
        assert loader.loader.persistent_workers == (num_threads > 0)
        batches = []
        for epoch, start in ((1, 0), (2, 0), (3, 1)):  # the last one resumes mid-epoch
            loader.set_epoch(epoch, start_batch=start)
            batches += list(loader)
        return batches

    serial, workers = epochs(0), epochs(2)
    assert len(serial) == len(workers) == 3 + 3 + 2
    for got, want in zip(workers, serial, strict=True):
        assert got["A_paths"] == want["A_paths"] and got["B_paths"] == want["B_paths"]
        assert all(torch.equal(got[k], want[k]) for k in keys)
    assert not torch.equal(serial[0]["A"], serial[3]["A"])  # epochs 1 and 2 differ (same first index or not)


@pytest.mark.parametrize(
    "device,num_threads,pinned,persistent",
    [("cuda:0", 2, True, True), ("cuda:0", 0, True, False), ("cpu", 2, False, True), (None, 0, False, False)],
)
def test_loader_pins_memory_for_gpus_and_keeps_workers(tmp_path: Path, device, num_threads, pinned, persistent) -> None:
    # Construction only (no GPU needed): the DataLoader's options for each target device.
    dataset = data.find_dataset_using_name("unaligned")(make_opt(unaligned_root(tmp_path)))
    loader = data.DatasetLoader(
        dataset,
        batch_size=2,
        num_workers=num_threads,
        shuffle=True,
        seed=0,
        device=torch.device(device) if device else None,
    )
    assert loader.loader.pin_memory is pinned and loader.loader.persistent_workers is persistent
    assert loader.loader.num_workers == num_threads


def test_create_dataset_targets_the_gpu_ids_device(tmp_path: Path, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(data, "DatasetLoader", lambda *args, **kwargs: seen.append(kwargs["device"]))
    data.create_dataset(make_opt(unaligned_root(tmp_path), gpu_ids=[1]))
    data.create_dataset(make_opt(unaligned_root(tmp_path), gpu_ids=[]))
    assert seen == [torch.device("cuda:1"), torch.device("cpu")]


def test_max_dataset_size_and_world_size_split(tmp_path: Path) -> None:
    root = unaligned_root(tmp_path, num_a=7, num_b=2)
    loader = data.create_dataset(make_opt(root, max_dataset_size=5, batch_size=2, dataset_mode="unaligned"))
    assert len(loader) == 5 and loader.num_batches == 3
    assert sum(len(b["A_paths"]) for b in loader) == 5
    ranks = [data.create_dataset(make_opt(root), rank=r, world_size=3) for r in range(3)]
    for loader in ranks:
        loader.set_epoch(1)
    orders = [loader.sampler.epoch_indices() for loader in ranks]
    assert [len(o) for o in orders] == [3, 3, 3] and [len(loader) for loader in ranks] == [3, 3, 3]
    assert set().union(*orders) == set(range(7))
    full = data.create_dataset(make_opt(root))
    full.set_epoch(1)
    order = full.sampler.epoch_indices()
    assert sorted(order) == list(range(7))
    assert orders[0] == order[0::3]  # 7 samples padded to 9 by wrapping around
    assert orders[1] == order[1::3] + [order[0]] and orders[2] == order[2::3] + [order[1]]


def test_batches_of_different_sizes_give_a_clear_error(tmp_path: Path) -> None:
    write(str(tmp_path / "a" / "x.png"), textured(20, 24, seed=0))
    write(str(tmp_path / "a" / "y.png"), textured(28, 24, seed=1))
    opt = make_opt(str(tmp_path / "a"), dataset_mode="single", preprocess="none", batch_size=2, is_train=False)
    with pytest.raises(
        UserError,
        match=r"images in one batch differ in size \(3x24x20, 3x24x28\); "
        r"use --batch_size 1 with --preprocess none",
    ):
        list(data.create_dataset(opt))
    batches = list(
        data.create_dataset(make_opt(str(tmp_path / "a"), dataset_mode="single", preprocess="none", is_train=False))
    )
    assert [tuple(b["A"].shape) for b in batches] == [(1, 3, 24, 20), (1, 3, 24, 28)]


def test_truncated_and_odd_files_raise_user_errors(tmp_path: Path) -> None:
    good = write(str(tmp_path / "good.png"), textured(32, 32, seed=0))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(Path(good).read_bytes()[:200])
    folder_named_like_image = tmp_path / "dir.jpg"
    folder_named_like_image.mkdir()
    for path in (truncated, folder_named_like_image, tmp_path / "missing.png"):
        with pytest.raises(UserError, match=f"^cannot read image {path}: .+"):
            load_image(str(path), 3)
    with pytest.raises(UserError, match="use 1 or 3"):
        load_image(good, 4)
