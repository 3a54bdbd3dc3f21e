"""Tests for evaluations/lpips.py: LPIPS with the project's VGG16 file, against the lpips package and
against the paper's formula written out in plain torch, and the pairwise diversity.

The backbone is a random VGG16 (torchvision's initialisation) saved in the project's two file
formats: a plain ``features.{i}`` state_dict (torchvision's flavour, named like torchvision's file)
and a dict recording its own mean/std (the Caffe flavour). 32 x 32 images keep it fast.
"""

import itertools
import json
import os
import warnings

import lpips
import numpy as np
import pytest
import torch
from helpers import random_vgg16_features, write_images
from PIL import Image

from evaluations.lpips import LPIPSVGG, load_images
from models.sesim import VGGWeightsError
from util.errors import UserError

CAFFE_MEAN, CAFFE_STD = [0.49, 0.46, 0.41], [0.226, 0.25, 0.21]
TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's vgg16().features


@pytest.fixture(scope="module")
def backbone():
    return random_vgg16_features()


@pytest.fixture(scope="module")
def files(backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vgg")
    state = {f"features.{k}": v.clone() for k, v in backbone.state_dict().items()}
    plain, caffe = folder / "vgg16-397923af.pth", folder / "vgg16_caffe.pth"
    torch.save(state, plain)
    torch.save({"state_dict": state, "mean": CAFFE_MEAN, "std": CAFFE_STD, "flavour": "caffe"}, caffe)
    return {"plain": str(plain), "caffe": str(caffe), "state": state, "folder": folder}


@pytest.fixture(scope="module")
def metrics(files):
    return {"plain": LPIPSVGG(files["plain"], batch_size=4), "caffe": LPIPSVGG(files["caffe"], batch_size=4)}


@pytest.fixture(scope="module")
def package(backbone):
    """The package's own LPIPS (its linear layers from its wheel), its trunk set by hand from ``backbone``."""
    with warnings.catch_warnings():  # torchvision on the package's vgg16(pretrained=False)
        warnings.simplefilter("ignore", UserWarning)
        net = lpips.LPIPS(net="vgg", version="0.1", pnet_rand=True, verbose=False)
    copied = set()
    with torch.no_grad():
        for part in (net.net.slice1, net.net.slice2, net.net.slice3, net.net.slice4, net.net.slice5):
            for name, module in part.named_children():
                source = backbone[int(name)]
                assert type(module) is type(source), name
                if isinstance(module, torch.nn.Conv2d):
                    module.weight.copy_(source.weight)
                    module.bias.copy_(source.bias)
                    copied.add(int(name))
    assert copied == {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28}
    return net.eval()


@pytest.fixture(scope="module")
def lin_weights():
    state = torch.load(
        os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth"),
        map_location="cpu",
        weights_only=True,
    )
    return [state[f"lin{k}.model.1.weight"].flatten() for k in range(5)]


def images(n, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=generator) * 2 - 1


def paper_lpips(x, y, backbone, lin_weights, mean, std):
    """LPIPS from its definition: unit-normalised relu features, squared difference weighted per channel,
    spatial mean, summed over the five layers."""

    def taps(image):
        h = ((image + 1) / 2 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        found = []
        for index, module in enumerate(backbone):
            h = module(h)
            if index in TAPS:
                found.append(h.clone())
            if index == TAPS[-1]:
                return found

    total = torch.zeros(x.shape[0])
    for fx, fy, w in zip(taps(x), taps(y), lin_weights):
        nx = fx / (torch.sqrt((fx**2).sum(dim=1, keepdim=True)) + 1e-10)
        ny = fy / (torch.sqrt((fy**2).sum(dim=1, keepdim=True)) + 1e-10)
        total += ((nx - ny) ** 2 * w.view(1, -1, 1, 1)).sum(dim=1).mean(dim=(1, 2))
    return total


def test_distance_equals_the_packages_forward(metrics, package):
    x, y = images(3, 1), images(3, 2)
    with torch.no_grad():
        expected_plain = package(x, y).flatten()  # the package's own ImageNet scaling constants
        package.scaling_layer.shift.copy_(torch.tensor(CAFFE_MEAN).view(1, 3, 1, 1) * 2 - 1)
        package.scaling_layer.scale.copy_(torch.tensor(CAFFE_STD).view(1, 3, 1, 1) * 2)
        expected_caffe = package(x, y).flatten()
    torch.testing.assert_close(metrics["plain"].distance(x, y), expected_plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["caffe"].distance(x, y), expected_caffe, rtol=1e-5, atol=1e-6)
    assert metrics["plain"].distance(x, y).shape == (3,)
    assert not torch.allclose(expected_plain, expected_caffe)  # the scaling matters


def test_distance_equals_the_papers_formula(metrics, backbone, lin_weights):
    x, y = images(2, 3), images(2, 4)
    with torch.no_grad():
        plain = paper_lpips(x, y, backbone, lin_weights, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        caffe = paper_lpips(x, y, backbone, lin_weights, CAFFE_MEAN, CAFFE_STD)
    torch.testing.assert_close(metrics["plain"].distance(x, y), plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["caffe"].distance(x, y), caffe, rtol=1e-5, atol=1e-6)
    assert (plain > 0).all()


def test_scaling_layer_is_the_files_preprocessing(metrics):
    x = images(2, 5)
    mean, std = torch.tensor(CAFFE_MEAN).view(1, 3, 1, 1), torch.tensor(CAFFE_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(metrics["caffe"].net.scaling_layer(x), ((x + 1) / 2 - mean) / std)
    # torchvision's ImageNet statistics give back the package's own constants
    plain = metrics["plain"].net.scaling_layer
    torch.testing.assert_close(plain.shift.flatten(), torch.tensor([-0.030, -0.088, -0.188]), atol=1e-6, rtol=0)
    torch.testing.assert_close(plain.scale.flatten(), torch.tensor([0.458, 0.448, 0.450]), atol=1e-6, rtol=0)


def test_diversity_is_the_mean_over_all_unordered_pairs(metrics):
    metric = metrics["caffe"]  # batch_size 4: the 10 pairs of 5 outputs go in chunks of 4, 4, 2
    outputs = images(5, 6)
    slow = [
        float(metric.distance(outputs[i : i + 1], outputs[j : j + 1])) for i, j in itertools.combinations(range(5), 2)
    ]
    assert metric.diversity(outputs) == pytest.approx(np.mean(slow), rel=1e-5)
    assert metric.diversity(outputs.flip(0)) == pytest.approx(metric.diversity(outputs), rel=1e-5)
    torch.testing.assert_close(metric.distance(outputs[:2], outputs[2:4]), metric.distance(outputs[2:4], outputs[:2]))
    assert metric.diversity(outputs[:2]) == pytest.approx(slow[0], rel=1e-5)


def test_diversity_of_identical_outputs_is_zero_and_one_output_is_refused(metrics):
    metric = metrics["plain"]
    assert metric.diversity(images(1, 7).expand(4, -1, -1, -1)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="K >= 2"):
        metric.diversity(images(1, 7))
    with pytest.raises(ValueError, match="K >= 2"):
        metric.diversity(images(1, 7)[0])


def test_mean_diversity_averages_the_inputs(metrics):
    metric = metrics["plain"]
    groups = [images(3, 8), images(2, 9)]
    expected = (metric.diversity(groups[0]) + metric.diversity(groups[1])) / 2
    assert metric.mean_diversity(iter(groups), progress=True, total=2) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="no groups"):
        metric.mean_diversity([])


def test_inputs_grey_range_and_eval_mode(metrics):
    metric = metrics["plain"]
    grey = images(2, 10)[:, :1]
    torch.testing.assert_close(
        metric.distance(grey[:1], grey[1:]), metric.distance(grey[:1].repeat(1, 3, 1, 1), grey[1:].repeat(1, 3, 1, 1))
    )
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        metric.distance(images(1, 1) + 1.5, images(1, 2))
    with pytest.raises(ValueError, match="equal shape"):
        metric.distance(images(1, 1), images(2, 2))
    metric.train()  # the package's linear layers hold dropout (p 0.5): it must stay off
    assert not any(module.training for module in metric.modules())
    x, y = images(1, 11), images(1, 12)
    assert torch.equal(metric.distance(x, y), metric.distance(x, y))


def test_description_and_comparability(metrics, files):
    plain, caffe = metrics["plain"], metrics["caffe"]
    assert plain.torchvision_weights and plain.description == files["plain"]
    assert "NOT" not in plain.note and files["plain"] in plain.note
    assert not caffe.torchvision_weights and "(caffe)" in caffe.description
    assert caffe.note.endswith("NOT torchvision's VGG16 weights, so scores are not comparable with published LPIPS")
    assert (caffe.mean, caffe.std) == (tuple(CAFFE_MEAN), tuple(CAFFE_STD))


def test_every_backbone_tensor_is_required(files):
    path = files["folder"] / "broken.pth"
    for key in ("features.0.weight", "features.14.weight", "features.28.bias"):
        state = dict(files["state"])
        del state[key]
        torch.save(state, path)
        with pytest.raises(VGGWeightsError, match=key):
            LPIPSVGG(str(path))
    state = dict(files["state"])
    state["features.2.weight"] = state["features.2.weight"][:32]
    torch.save(state, path)
    with pytest.raises(VGGWeightsError, match=r"features.2.weight has shape \(32, 64, 3, 3\)"):
        LPIPSVGG(str(path))


def test_load_images_reads_files_into_minus_one_one(tmp_path):
    write_images(tmp_path / "out", 2, size=(32, 24))
    paths = [str(tmp_path / "out" / f"img_{i}.png") for i in range(2)]
    Image.open(paths[0]).save(tmp_path / "out" / "img_0.jpg", quality=95)
    loaded = load_images(paths + [str(tmp_path / "out" / "img_0.jpg")])
    assert loaded.shape == (3, 3, 32, 24) and loaded.dtype == torch.float32
    expected = torch.from_numpy(np.array(Image.open(paths[1]).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(loaded[1], expected)
    assert loaded.min() >= -1 and loaded.max() <= 1
    write_images(tmp_path / "other", 1, size=(16, 16))
    with pytest.raises(UserError, match="share a size"):
        load_images([paths[0], str(tmp_path / "other" / "img_0.png")])


@pytest.mark.slow
def test_score_multi_script(files, metrics, tmp_path, monkeypatch, capsys):
    """scripts/score_multi.py on a hand-made results page: diversity and structure against direct sums."""
    from helpers import load_script, run_script
    from util.metrics import ssim

    score_multi = load_script("scripts/score_multi.py")
    pages = tmp_path / "page" / "images"
    rng = np.random.default_rng(0)
    source = {n: (rng.random((32, 32, 3)) * 255).astype(np.uint8) for n in ("a", "b")}
    for name, photo in source.items():
        for k, folder in enumerate(["real_A", "fake_B_1", "fake_B_2", "fake_B_3"]):
            (pages / folder).mkdir(parents=True, exist_ok=True)
            image = photo if k < 2 else (rng.random((32, 32, 3)) * 255).astype(np.uint8)  # fake_B_1 = input
            Image.fromarray(image).save(pages / folder / f"{name}.png")
        for style in ("s1", "s2"):
            (tmp_path / "ref").mkdir(exist_ok=True)
            Image.fromarray(photo).save(tmp_path / "ref" / f"{name}_{style}.png")
    argv = [
        "--results",
        tmp_path / "page",
        "--lpips_weights",
        files["plain"],
        "--reference",
        tmp_path / "ref",
        "--figure",
        tmp_path / "grid.jpg",
        "--rows",
        "2",
    ]
    assert run_script(score_multi, argv, monkeypatch) == 0
    assert "NOT torchvision's" not in capsys.readouterr().out  # a file named like torchvision's
    scores = json.loads((tmp_path / "page" / "multi_scores.json").read_text())
    metric = metrics["plain"]
    for name in ("a", "b"):
        outs = load_images([str(pages / f / f"{name}.png") for f in ("fake_B_1", "fake_B_2", "fake_B_3")])
        pairs = [
            float(metric.distance(outs[i : i + 1], outs[j : j + 1])) for i, j in itertools.combinations(range(3), 2)
        ]
        photo = source[name] / 255.0
        structure = np.mean([ssim(((o.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1), photo) for o in outs])
        assert scores["images"][name]["lpips_diversity"] == pytest.approx(np.mean(pairs), abs=1e-5)
        assert scores["images"][name]["ssim_structure"] == pytest.approx(structure, abs=1e-6)
        # the reference's two copies of the input: no diversity, full structure
        assert scores["reference"]["images"][name]["lpips_diversity"] == pytest.approx(0, abs=1e-6)
        assert scores["reference"]["images"][name]["ssim_structure"] == pytest.approx(1, abs=1e-6)
    with Image.open(tmp_path / "grid.jpg") as grid:
        assert grid.size == (4 * 100 + 8, 2 * 100)  # input | 3 outputs at 96 px + 4 px gaps
    (pages / "fake_B_2").rename(pages / "other")
    (pages / "fake_B_3").rename(pages / "other3")
    assert run_script(score_multi, argv[:4], monkeypatch) != 0
    assert "holds 1 fake_B_<k> folders" in capsys.readouterr().err
