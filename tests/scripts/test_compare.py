"""scripts/compare.py on a tiny dataset: trains, scores, writes CSV / table / figure, resumes and skips."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from evaluations.efficientnet_lite import EfficientNetLite0
from helpers import load_script, run_script, write_unaligned

compare = load_script("scripts/compare.py")


@pytest.mark.slow
def test_compare_trains_scores_resumes_and_skips(tmp_path, monkeypatch, capsys):
    root = write_unaligned(tmp_path / "data", 2)
    weights = tmp_path / "effnet.pth"
    torch.manual_seed(0)
    torch.save(EfficientNetLite0().state_dict(), weights)  # random features: the pipeline, not the numbers
    out = tmp_path / "cmp"
    argv = [
        "--dataroot",
        root,
        "--output_dir",
        out,
        "--methods",
        "sc_fsesim",
        "cut",
        "--n_epochs",
        "1",
        "--n_epochs_decay",
        "1",
        "--load_size",
        "36",
        "--crop_size",
        "32",
        "--vgg_weights",
        "random",
        "--features",
        "efficientnet_lite0",
        "--feature_weights",
        weights,
        "--train_args",
        "--ngf 8 --ndf 8 --num_threads 0",
    ]
    # cut was interrupted after one step: compare.py resumes it instead of starting again
    args = compare.parse_args([str(a) for a in argv])
    train = load_script("train.py")
    assert run_script(train, compare.train_argv(args, "cut") + ["--max_iters", "1"], monkeypatch) == 0
    assert run_script(compare, argv, monkeypatch) == 0
    first = capsys.readouterr().out
    assert "--continue_train" in first and first.count("training:") == 2
    rows = list(csv.DictReader(open(out / "comparison.csv")))
    assert [r["method"] for r in rows] == ["sc_fsesim", "cut"]
    assert all(int(r["steps"]) == 4 for r in rows)  # 2 epochs of 2 images, whatever the interruption
    assert all(float(r["structure"]) >= 0 and float(r["sec_per_step"]) > 0 for r in rows)
    # the paired score: PSNR of each saved translation against the painted truth of the same name
    values = []
    for name in ("img_0", "img_1"):
        fake, truth = (
            np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255
            for p in (out / "translations" / "cut" / f"{name}.png", root / "testB" / f"{name}.png")
        )
        values.append(10 * np.log10(1 / np.mean((fake - truth) ** 2)))
    assert abs(float(rows[1]["psnr"]) - np.mean(values)) < 1e-3
    table = (out / "comparison.md").read_text()
    assert table.startswith("| method | FID") and "| cut |" in table and "| sc_fsesim |" in table
    with Image.open(out / "comparison.png") as grid:  # 2 test rows; input, 2 methods, ground truth
        assert grid.size == (4 * 128 + 3 * 4, 2 * 128 + 4)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("*.pth")}
    assert run_script(compare, argv, monkeypatch) == 0
    second = capsys.readouterr().out
    assert "training:" not in second and second.count("skipped") == 2
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("*.pth")}
