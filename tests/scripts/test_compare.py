"""scripts/compare.py on a tiny dataset: trains, scores, writes CSV / table / figure, resumes and skips."""

import csv
import json
import sys

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


@pytest.mark.slow
def test_compare_over_seeds_gives_each_method_mean_and_spread(tmp_path, monkeypatch, capsys):
    """--seeds 2: every method trained with seeds 3 and 4 in runs of their own; the summary is the mean and the
    sample standard deviation of the per-run rows (recomputed here from comparison.csv)."""
    root = write_unaligned(tmp_path / "data", 2)
    weights = tmp_path / "effnet.pth"
    torch.manual_seed(0)
    torch.save(EfficientNetLite0().state_dict(), weights)
    out = tmp_path / "cmp"
    argv = ["--dataroot", root, "--output_dir", out, "--methods", "sc_recommended", "fastcut", "--seed", "3"]
    argv += ["--seeds", "2", "--n_epochs", "1", "--n_epochs_decay", "0", "--load_size", "36", "--crop_size", "32"]
    argv += ["--vgg_weights", "random", "--features", "efficientnet_lite0", "--feature_weights", weights]
    argv += ["--train_args", "--ngf 8 --ndf 8 --num_threads 0"]
    assert run_script(compare, argv, monkeypatch) == 0
    capsys.readouterr()
    rows = list(csv.DictReader(open(out / "comparison.csv")))
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("sc_recommended", "3"),
        ("sc_recommended", "4"),
        ("fastcut", "3"),
        ("fastcut", "4"),
    ]
    for run in ("sc_recommended_s3", "sc_recommended_s4", "fastcut_s3", "fastcut_s4"):
        options = json.loads((out / "checkpoints" / run / "opt.json").read_text())
        assert options["seed"] == int(run[-1])
    assert json.loads((out / "checkpoints" / "sc_recommended_s3" / "opt.json").read_text())["lambda_identity"] == 1.0
    a, b = (np.asarray(Image.open(out / "translations" / f"fastcut_s{s}" / "img_0.png"), dtype=int) for s in (3, 4))
    assert np.abs(a - b).max() > 0  # the seed reached the runs
    summary = list(csv.DictReader(open(out / "comparison_summary.csv")))
    assert [s["method"] for s in summary] == ["sc_recommended", "fastcut"]
    for entry in summary:
        runs = [r for r in rows if r["method"] == entry["method"]]
        for key in ("fid", "kid", "ssim", "structure"):
            values = [float(r[key]) for r in runs]
            mean = sum(values) / 2
            sd = (sum((v - mean) ** 2 for v in values) / (2 - 1)) ** 0.5
            assert float(entry[key]) == pytest.approx(mean, rel=1e-4, abs=1e-9)
            assert float(entry[key + "_sd"]) == pytest.approx(sd, rel=1e-3, abs=1e-6)
    table = (out / "comparison.md").read_text()
    assert table.startswith("Mean ± standard deviation over seeds 3-4")
    assert "| sc_recommended | 2 |" in table and "| fastcut_s4 |" in table


def test_a_childs_peak_memory_is_its_own_not_its_parents():
    """The parent holds 400 MB (touched); a child that allocates 60 MB reports about 60 MB plus Python's own,
    where wait4's ru_maxrss starts from the parent's high-water mark."""
    held = np.ones(400 * 2**20 // 8)  # noqa: F841 (kept alive: the parent's resident memory)
    code = "import numpy, time; a = numpy.ones(60 * 2**20 // 8); time.sleep(0.6)"
    status, seconds, peak_mb = compare.run_child([sys.executable, "-c", code])
    assert status == 0 and seconds > 0.5
    assert 60 < peak_mb < 250, peak_mb
