"""scripts/structure_map.py and scripts/error_map.py --heads (the paper's two explanatory figures)."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import load_script, run_script, write_images
from models.sesim import SpatialCorrelativeLoss

structure_map = load_script("scripts/structure_map.py")
error_map = load_script("scripts/error_map.py")


def test_point_maps_equal_a_numpy_cosine_of_centred_features():
    feat = torch.randn(1, 6, 5, 7, dtype=torch.float64)
    points = [(0.0, 0.0), (0.5, 0.5), (0.9, 0.2)]
    maps = structure_map.point_maps(feat, points)
    f = feat[0].numpy().reshape(6, -1)
    f = f - f.mean(axis=1, keepdims=True)
    f = f / np.linalg.norm(f, axis=0, keepdims=True)
    for n, (x, y) in enumerate(points):
        q = int(y * 5) * 7 + int(x * 7)
        assert np.allclose(maps[n].ravel(), f[:, q] @ f, atol=1e-6)
        assert abs(maps[n].ravel()[q] - 1) < 1e-6  # a point is most like itself
    with pytest.raises(Exception, match="--points"):
        structure_map.parse_points(["1.5,0.2"])


@pytest.fixture
def images(tmp_path):
    write_images(tmp_path / "im", 2, size=(32, 32))
    return tmp_path / "im" / "img_0.png", tmp_path / "im" / "img_1.png"


@pytest.fixture
def heads_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "latest_net_F.pth"
    torch.save(SpatialCorrelativeLoss(learned=True, in_channels=[256, 512, 512]).state_dict(), path)
    return path


def test_structure_map_draws_with_vgg_and_with_heads(images, heads_file, tmp_path, monkeypatch, capsys):
    base = ["--source", images[0], "--target", images[1], "--vgg_weights", "random", "--size", "32"]
    for extra, name in (([], "vgg.png"), (["--heads", heads_file], "heads.png")):
        assert run_script(structure_map, base + extra + ["--output", tmp_path / name], monkeypatch) == 0
        assert Image.open(tmp_path / name).size[0] > 500
    printed = capsys.readouterr().out.splitlines()
    agreements = [line.split()[-1] for line in printed if line.startswith("point")]
    assert len(agreements) == 6 and agreements[:3] != agreements[3:]  # the heads change the maps
    assert run_script(structure_map, base + ["--heads", heads_file, "--layer", "relu1_1"], monkeypatch) == 2


def test_error_map_heads_map_is_the_loss_through_the_heads(images, heads_file, tmp_path, monkeypatch, capsys):
    source, target = (error_map.load(str(p), 32) for p in images)
    vgg = error_map.VGG16Features(layers=[4, 6, 7, 9], weights="random")
    loss = SpatialCorrelativeLoss(patch_nums=0, patch_size=64)
    heads = error_map.load_heads(str(heads_file), vgg, [4, 7, 9])
    maps = error_map.error_maps(source, target, vgg, 6, [4, 7, 9], loss, heads)
    with torch.no_grad():
        feats = vgg(torch.cat([source, target]))
        projected = [h(f) for h, f in zip(heads, [feats[0], feats[2], feats[3]])]
        expected = float(loss([p[:1] for p in projected], [p[1:] for p in projected]))
    assert abs(float(maps[3].mean()) - expected) < 1e-5
    plain = error_map.error_maps(source, target, vgg, 6, [4, 7, 9], loss)
    assert not np.allclose(plain[3], maps[3]) and np.allclose(plain[0], maps[0])
    argv = [
        "--source",
        images[0],
        "--targets",
        images[1],
        "--vgg_weights",
        "random",
        "--heads",
        heads_file,
        "--output",
        tmp_path / "e.png",
    ]
    assert run_script(error_map, argv, monkeypatch) == 0 and (tmp_path / "e.png").is_file()
    assert "learned heads" in capsys.readouterr().out
