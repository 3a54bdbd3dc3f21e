"""scripts/error_map.py and scripts/eval_cityscapes.py on tiny inputs (random networks, CPU)."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluations.drn import DRNSeg, load_drn
from evaluations.segmentation import (
    COLOUR_TO_TRAIN_ID,
    DRN_MEAN,
    DRN_STD,
    colours_to_train_ids,
    confusion_of_pairs,
    segmentation_scores,
)
from models.sesim import SpatialCorrelativeLoss, VGG16Features
from util.errors import UserError, run_cli
from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
PALETTE = {v: k for k, v in COLOUR_TO_TRAIN_ID.items() if v != 255}  # train id -> colour


def run(module, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["script"] + [str(a) for a in argv])
    try:
        run_cli(module.main)
    except SystemExit as exc:
        return exc.code
    return 0


def save(array, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ---- error maps -------------------------------------------------------------------------------


def test_error_map_figure_and_means(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    paths = [save(im, tmp_path / f"{name}.png") for im, name in zip(images, ["src", "aligned", "other"])]
    script = load_script("scripts/error_map.py")
    output = tmp_path / "figure.png"
    argv = [
        "--source",
        paths[0],
        "--targets",
        paths[1],
        paths[2],
        "--output",
        output,
        "--vgg_weights",
        "random",
        "--attn_layers",
        "4,7",
    ]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run(script, argv, monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    with Image.open(output) as figure:
        assert figure.format == "PNG" and figure.size[0] > 2 * figure.size[1] > 400
    means = {line.split()[0] + line.split()[1]: [float(v) for v in line.split()[-3:-1]] for line in lines[1:5]}
    # Pixel L1 straight from the files, the loss straight from the loss module (all queries).
    a, b, c = (im.astype(np.float64) / 127.5 - 1 for im in images)
    assert means["pixelL1"] == pytest.approx([np.abs(a - b).mean(), np.abs(a - c).mean()], abs=1e-5)
    loss = SpatialCorrelativeLoss(patch_nums=0, patch_size=64)
    to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float()  # noqa: E731
    torch.manual_seed(0)  # the script drew its random VGG (layers 4, 6, 7) right after this seed too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = VGG16Features(layers=[4, 6, 7], weights="random")
    with torch.no_grad():
        src = vgg(to_tensor(a))
        expected = [
            float(loss([src[0], src[2]], [t[0], t[2]], patch_ids=[torch.arange(64), torch.arange(16)]))
            for t in (vgg(to_tensor(b)), vgg(to_tensor(c)))
        ]
    assert means["spatially-correlativeloss"] == pytest.approx(expected, abs=1e-4)


def test_error_map_pair_summary_and_errors(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    for folder in ("A", "B"):
        for name in ("x", "y"):
            save(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), tmp_path / folder / f"{name}.png")
    script = load_script("scripts/error_map.py")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            run(script, ["--pair_folders", tmp_path / "A", tmp_path / "B", "--vgg_weights", "random"], monkeypatch) == 0
        )
    out = capsys.readouterr().out
    assert "2 aligned and 2 unaligned pairs" in out and out.count("x") >= 4
    assert run(script, ["--source", tmp_path / "A" / "x.png"], monkeypatch) == 2
    assert (
        run(
            script,
            ["--source", tmp_path / "nope.png", "--targets", tmp_path / "A" / "x.png", "--vgg_weights", "random"],
            monkeypatch,
        )
        == 2
    )
    assert "nope.png does not exist" in capsys.readouterr().err


# ---- Cityscapes segmentation scores ------------------------------------------------------------


def colour_image(labels):
    return np.array([PALETTE[int(v)] for v in labels.ravel()], dtype=np.uint8).reshape(*labels.shape, 3)


class ColourOracle(torch.nn.Module):
    """A 'segmentation network' that knows the Cityscapes colours: score = -distance to each class colour."""

    def forward(self, x):
        rgb = x * torch.tensor(DRN_STD).view(1, 3, 1, 1) + torch.tensor(DRN_MEAN).view(1, 3, 1, 1)
        colours = torch.tensor([PALETTE[i] for i in range(19)], dtype=torch.float32) / 255  # (19, 3)
        return -((rgb[:, None] - colours[None, :, :, None, None]) ** 2).sum(dim=2)  # (B, 19, H, W)


def test_segmentation_pipeline_with_a_known_network():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 19, (3, 16, 24)).astype(np.uint8)
    labels[0, :2] = 255  # ignored pixels
    photos = colour_image(np.where(labels == 255, 0, labels))
    # Repaint one block of image 1 with class 5's colour: those pixels are predicted as 5.
    predicted = np.where(labels == 255, 0, labels).copy()
    photos[1, 4:8, 4:10] = PALETTE[5]
    predicted[1, 4:8, 4:10] = 5
    pairs = [(torch.from_numpy(p).permute(2, 0, 1).float() / 255, lab) for p, lab in zip(photos, labels)]
    hist = confusion_of_pairs(pairs, ColourOracle())
    expected = np.zeros((19, 19), int)
    for t, p in zip(labels.ravel(), predicted.ravel()):
        if t != 255:
            expected[t, p] += 1
    assert np.array_equal(hist, expected)
    assert segmentation_scores(hist)["pixel_accuracy"] == pytest.approx(
        1 - 24 * (1 - np.mean(labels[1, 4:8, 4:10] == 5)) / (labels != 255).sum()
    )


@pytest.fixture(scope="module")
def drn_file(tmp_path_factory):
    """A random DRN-D-22 saved like a DRN training checkpoint from 2017: DataParallel keys in a
    'state_dict', no num_batches_tracked."""
    torch.manual_seed(0)
    net = DRNSeg("drn_d_22")
    state = {"module." + k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("drn") / "drn_d_22_cityscapes.pth"
    torch.save({"state_dict": state, "arch": "drn_d_22", "best_prec1": 0.0}, path)
    return path, net.eval()


def test_eval_cityscapes_script_with_gtfine_and_aligned_labels(drn_file, tmp_path, monkeypatch, capsys):
    weights, net = drn_file
    rng = np.random.default_rng(3)
    frames = ["aachen_000000_000019", "bonn_000001_000019"]
    ids = {f: rng.choice([7, 8, 11, 21, 23, 26, 0, 4], size=(32, 64)).astype(np.uint8) for f in frames}
    for frame in frames:
        city = frame.split("_")[0]
        save(ids[frame], tmp_path / "gtFine" / "val" / city / f"{frame}_gtFine_labelIds.png")
        save(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8), tmp_path / "fake" / f"{frame}.png")
        train_ids = np.array(
            [{7: 0, 8: 1, 11: 2, 21: 8, 23: 10, 26: 13}.get(int(v), 255) for v in ids[frame].ravel()], dtype=np.uint8
        ).reshape(32, 64)
        aligned = np.concatenate(
            [np.zeros((32, 64, 3), np.uint8), colour_image(np.where(train_ids == 255, 0, train_ids))], axis=1
        )
        aligned[:, 64:][train_ids == 255] = (81, 0, 81)  # 'ground': an ignored class colour
        save(aligned, tmp_path / "aligned" / f"{frame}.png")
    script = load_script("scripts/eval_cityscapes.py")
    common = ["--results_dir", tmp_path / "fake", "--seg_net", "drn_d_22", "--seg_weights", weights, "--gpu_ids", "-1"]
    assert (
        run(
            script, common + ["--gtFine_dir", tmp_path / "gtFine" / "val", "--output", tmp_path / "a.json"], monkeypatch
        )
        == 0
    )
    assert (
        run(script, common + ["--aligned_dir", tmp_path / "aligned", "--output", tmp_path / "b.json"], monkeypatch) == 0
    )
    from_gtfine = json.loads((tmp_path / "a.json").read_text())
    from_aligned = json.loads((tmp_path / "b.json").read_text())
    # The confusion matrix by hand: the same network, normalised by hand, argmax, counted in a loop.
    expected = np.zeros((19, 19), int)
    for frame in frames:
        photo = torch.from_numpy(np.array(Image.open(tmp_path / "fake" / f"{frame}.png"))).permute(2, 0, 1).float()
        x = (photo[None] / 255 - torch.tensor(DRN_MEAN).view(1, 3, 1, 1)) / torch.tensor(DRN_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            prediction = net(x).argmax(1)[0].numpy()
        truth = colours_to_train_ids(np.array(Image.open(tmp_path / "aligned" / f"{frame}.png"))[:, 64:])
        for t, p in zip(truth.ravel(), prediction.ravel()):
            if t != 255:
                expected[t, p] += 1
    assert from_gtfine["confusion"] == expected.tolist() == from_aligned["confusion"]
    assert from_gtfine["images"] == 2 and from_gtfine["mean_iou"] == pytest.approx(
        segmentation_scores(expected)["mean_iou"]
    )
    assert "mean IoU" in capsys.readouterr().out
    assert (
        run(
            script,
            common[:-4] + ["--seg_net", "drn_d_38", "--seg_weights", weights, "--aligned_dir", tmp_path / "aligned"],
            monkeypatch,
        )
        == 2
    )
    assert "does not fit --seg_net drn_d_38" in capsys.readouterr().err
    with pytest.raises(UserError, match="--seg_weights"):
        load_drn("drn_d_22", str(tmp_path / "missing.pth"))
