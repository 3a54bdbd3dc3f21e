"""Realism, segmentation and paired scores against direct numpy / loop computations (CPU, small sets)."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_fid.fid_score import calculate_frechet_distance as pytorch_fid_distance

import evaluations.fid as fid_module
from evaluations.drn import DRNSeg, bilinear_kernel
from evaluations.efficientnet_lite import EfficientNetLite0, SameConv2d, convert_state_dict
from evaluations.error_maps import spatial_loss_map, spatial_query_losses
from evaluations.fid import feature_statistics, fid_from_features, frechet_distance
from evaluations.kid import kernel_inception_distance, mmd2_unbiased
from evaluations.paired import vgg_distance
from evaluations.prdc import prdc
from evaluations.realism import realism_scores
from evaluations.segmentation import (
    colours_to_train_ids,
    confusion_matrix,
    label_ids_to_train_ids,
    predict_labels,
    segmentation_scores,
)
from models.sesim import SpatialCorrelativeLoss, VGG16Features, masked_comparison, self_similarity
from util.errors import UserError


def psd_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def gaussian_distance(mu1, s1, mu2, s2):
    """Closed form via symmetric square roots: Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)."""
    root = psd_sqrt(s1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(psd_sqrt(root @ s2 @ root)))


def random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---- FID ---------------------------------------------------------------------------------------


def test_frechet_distance_of_known_gaussians():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s.
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == pytest.approx(
        9.0 + 1.0, abs=1e-9
    )
    # Diagonal covariances: sum of per-dimension distances.
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-9)
    # General covariances against the symmetric-root closed form and pytorch-fid's own function.
    rng = np.random.default_rng(0)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(gaussian_distance(mu1, s1, mu2, s2), abs=1e-8)
    assert ours == pytest.approx(pytorch_fid_distance(mu1, s1, mu2, s2), abs=1e-10)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_fid_from_features_matches_direct_statistics():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((40, 5)) @ rng.standard_normal((5, 5))
    fake = rng.standard_normal((30, 5)) * 1.5 + 0.3

    def stats(x):
        mean = x.sum(axis=0) / len(x)
        cov = sum(np.outer(row - mean, row - mean) for row in x) / (len(x) - 1)
        return mean, cov

    mu, sigma = feature_statistics(real)
    assert np.allclose(mu, stats(real)[0]) and np.allclose(sigma, stats(real)[1])
    assert fid_from_features(real, fake) == pytest.approx(gaussian_distance(*stats(real), *stats(fake)), abs=1e-8)
    # Samples of two known Gaussians: the estimate approaches the closed form.
    mu1, mu2, s1, s2 = np.zeros(3), np.array([1.0, 0.0, -1.0]), np.diag([1.0, 2.0, 0.5]), np.eye(3)
    x = rng.multivariate_normal(mu1, s1, size=20000)
    y = rng.multivariate_normal(mu2, s2, size=20000)
    assert fid_from_features(x, y) == pytest.approx(gaussian_distance(mu1, s1, mu2, s2), abs=0.03)


def test_frechet_distance_retries_with_eps_and_rejects_imaginary(monkeypatch):
    rng = np.random.default_rng(2)
    s1, s2 = random_spd(rng, 4), random_spd(rng, 4)
    mu1, mu2 = rng.standard_normal(4), rng.standard_normal(4)
    real_sqrtm, calls = fid_module.linalg.sqrtm, []

    def first_call_fails(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid_module.linalg, "sqrtm", first_call_fails)
    with pytest.warns(UserWarning, match="singular"):
        value = frechet_distance(mu1, s1, mu2, s2, eps=1e-2)
    offset = 1e-2 * np.eye(4)
    assert np.allclose(calls[1], (s1 + offset) @ (s2 + offset))
    expected = (
        ((mu1 - mu2) ** 2).sum()
        + np.trace(s1)
        + np.trace(s2)
        - 2 * np.trace(psd_sqrt(psd_sqrt(s1 + offset) @ (s2 + offset) @ psd_sqrt(s1 + offset)))
    )
    assert value == pytest.approx(expected, abs=1e-8)
    monkeypatch.setattr(fid_module.linalg, "sqrtm", lambda m: real_sqrtm(m) + 0.1j * np.eye(len(m)))
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(mu1, s1, mu2, s2)


# ---- KID and PRDC ------------------------------------------------------------------------------


def slow_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_a_kernel_loop():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((12, 7)), rng.standard_normal((9, 7)) + 0.5
    assert mmd2_unbiased(real, fake) == pytest.approx(slow_mmd2(real, fake), rel=1e-10)
    # Subsets as large as the smaller set: each subset's value is the loop on the chosen rows.
    mean, std = kernel_inception_distance(real, fake, num_subsets=5, subset_size=100, seed=7)
    gen = np.random.default_rng(7)
    values = [
        slow_mmd2(real[gen.choice(12, 9, replace=False)], fake[gen.choice(9, 9, replace=False)]) for _ in range(5)
    ]
    assert mean == pytest.approx(np.mean(values), rel=1e-10) and std == pytest.approx(np.std(values), rel=1e-8)
    same = rng.standard_normal((400, 4))
    # One distribution scores near 0 (unbiased: either sign); a shifted one far above.
    assert abs(kernel_inception_distance(same[:200], same[200:], num_subsets=10, subset_size=100)[0]) < 0.1
    assert kernel_inception_distance(same[:200], same[200:] + 1.0, num_subsets=10, subset_size=100)[0] > 5.0


def slow_prdc(real, fake, k):
    def radius(points, i):
        return sorted(np.linalg.norm(points[i] - points[j]) for j in range(len(points)) if j != i)[k - 1]

    r_real = [radius(real, i) for i in range(len(real))]
    r_fake = [radius(fake, j) for j in range(len(fake))]
    dist = lambda i, j: np.linalg.norm(real[i] - fake[j])  # noqa: E731
    precision = np.mean([any(dist(i, j) < r_real[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(dist(i, j) < r_fake[j] for j in range(len(fake))) for i in range(len(real))])
    density = sum(dist(i, j) < r_real[i] for i in range(len(real)) for j in range(len(fake))) / (k * len(fake))
    coverage = np.mean([min(dist(i, j) for j in range(len(fake))) < r_real[i] for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_a_loop(k):
    rng = np.random.default_rng(k)
    real, fake = rng.standard_normal((15, 4)), rng.standard_normal((11, 4)) * 1.3 + 0.4
    ours, slow = prdc(real, fake, k=k), slow_prdc(real, fake, k)
    for key in slow:
        assert ours[key] == pytest.approx(slow[key], abs=1e-12), key


def test_prdc_known_configuration():
    # Real points 0, 1, 2, 3 on a line (k = 1: every radius is 1); fakes at 0.5 (inside the balls
    # of 0 and 1) and at 10 (inside none).
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0]])
    scores = prdc(real, fake, k=1)
    assert scores["precision"] == 0.5 and scores["density"] == 1.0 and scores["coverage"] == 0.5
    assert scores["recall"] == 1.0  # each fake's radius is 9.5 (k = 1: the other fake): all reals are inside
    with pytest.raises(ValueError, match="k = 4"):
        prdc(real, fake, k=4)


def test_realism_scores_bundle_and_size_errors():
    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((8, 3)), rng.standard_normal((7, 3)) + 1.0
    scores = realism_scores(real, fake, kid_subsets=4, kid_subset_size=5, prdc_k=2, seed=3)
    assert scores["fid"] == pytest.approx(fid_from_features(real, fake))
    assert (scores["kid"], scores["kid_std"]) == pytest.approx(kernel_inception_distance(real, fake, 4, 5, seed=3))
    assert {k: scores[k] for k in ("precision", "recall", "density", "coverage")} == pytest.approx(prdc(real, fake, 2))
    assert "precision" not in realism_scores(real, fake, kid_subsets=2, prdc_k=0)
    with pytest.raises(UserError, match="--prdc_k 7"):
        realism_scores(real, fake, prdc_k=7)
    with pytest.raises(UserError, match="at least 2"):
        realism_scores(real, fake[:1])


# ---- segmentation ------------------------------------------------------------------------------


def test_cityscapes_id_mapping_and_colours():
    ids = np.array([[7, 8, 11, 26], [0, 33, 255, 31]])
    assert label_ids_to_train_ids(ids).tolist() == [[0, 1, 2, 13], [255, 18, 255, 16]]
    full = label_ids_to_train_ids(np.arange(34))
    assert (full != 255).sum() == 19 and sorted(full[full != 255].tolist()) == list(range(19))
    colours = np.array(
        [[[128, 64, 128], [70, 130, 180], [119, 11, 32]], [[81, 0, 81], [131, 60, 125], [40, 200, 40]]], dtype=np.uint8
    )
    # road, sky, bicycle / ground (ignored), road blurred by JPEG, no class colour at all
    assert colours_to_train_ids(colours).tolist() == [[0, 10, 18], [255, 0, 255]]


def test_confusion_matrix_and_scores_on_known_matrices():
    label = np.array([0, 0, 1, 1, 1, 2, 255, 2])
    pred = np.array([0, 1, 1, 1, 0, 2, 0, 0])
    hist = confusion_matrix(pred, label, num_classes=3)
    loop = np.zeros((3, 3), int)
    for t, p in zip(label, pred):
        if t < 3:
            loop[t, p] += 1
    assert hist.tolist() == loop.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 1]]
    scores = segmentation_scores(hist)
    assert scores["pixel_accuracy"] == pytest.approx(4 / 7)
    assert scores["class_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert scores["ious"] == pytest.approx([1 / 4, 2 / 4, 1 / 2])
    assert scores["mean_iou"] == pytest.approx((1 / 4 + 2 / 4 + 1 / 2) / 3)
    # A class absent from truth and prediction is left out of the means, not counted as 0.
    padded = np.zeros((4, 4), int)
    padded[:3, :3] = hist
    again = segmentation_scores(padded)
    assert again["mean_iou"] == pytest.approx(scores["mean_iou"]) and math.isnan(again["ious"][3])
    # Predicted but never true: its accuracy is undefined, its IoU is 0.
    padded[0, 3] = 2
    third = segmentation_scores(padded)
    assert math.isnan(third["class_accuracies"][3]) and third["ious"][3] == 0.0


def test_predict_labels_normalises_and_resizes():
    seen = {}

    def net(x):
        seen["x"] = x
        return torch.stack([x[:, 0], -x[:, 0]], dim=1)[:, :, ::2, ::2]  # (B, 2, H/2, W/2)

    images = torch.rand(2, 3, 8, 6)
    labels = predict_labels(net, images, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    assert torch.allclose(seen["x"][:, 1], (images[:, 1] - 0.5) / 0.5)
    small = torch.stack([seen["x"][:, 0], -seen["x"][:, 0]], dim=1)[:, :, ::2, ::2]
    expected = F.interpolate(small, size=(8, 6), mode="bilinear", align_corners=False).argmax(1)
    assert labels.shape == (2, 8, 6) and torch.equal(labels, expected)


def test_drn_upsampling_is_bilinear_and_shapes():
    kernel = bilinear_kernel(4)  # stride 2: the classic [1, 3, 3, 1] / 4 filter per axis
    assert torch.allclose(kernel, torch.outer(torch.tensor([1, 3, 3, 1.0]) / 4, torch.tensor([1, 3, 3, 1.0]) / 4))
    net = DRNSeg("drn_d_22", classes=19).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 48)).shape == (1, 19, 32, 48)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(15.9e6, rel=0.01)


# ---- feature networks and paired scores -------------------------------------------------------


def test_same_padding_and_efficientnet_key_format():
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TensorFlow SAME, stride 2, size 4: output 2, padding 1 in total, all at the bottom/right.
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    assert torch.equal(conv(x), expected) and conv(x).shape == (1, 1, 2, 2)
    net = EfficientNetLite0()

    def published_key(key):  # modules get a leading underscore, block indices and tensors do not
        *modules, tensor = key.split(".")
        return ".".join([m if m.isdigit() else "_" + m for m in modules] + [tensor])

    published = {published_key(k): v for k, v in net.state_dict().items()}
    assert "_blocks.0._depthwise_conv.weight" in published
    assert convert_state_dict(published).keys() == net.state_dict().keys()
    assert sum(p.numel() for p in net.parameters()) == 4652008  # the published file's count
    with torch.no_grad():
        assert net.eval().features(torch.rand(1, 3, 224, 224)).shape == (1, 1280)


def test_vgg_distance_matches_a_location_loop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = VGG16Features(layers=("relu1_2", "relu2_2"), weights="random")
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    ours = vgg_distance(a, b, vgg)
    fa, fb = vgg(a), vgg(b)
    for n in range(2):
        per_layer = []
        for x, y in zip(fa, fb):
            values = [
                float((((x[n, :, i, j] / x[n, :, i, j].norm()) - (y[n, :, i, j] / y[n, :, i, j].norm())) ** 2).sum())
                for i in range(x.shape[2])
                for j in range(x.shape[3])
            ]
            per_layer.append(np.mean(values))
        assert float(ours[n]) == pytest.approx(np.mean(per_layer), rel=1e-4)
    assert torch.allclose(vgg_distance(a, a, vgg), torch.zeros(2), atol=1e-6)


def test_spatial_loss_map_is_the_loss_at_every_query():
    torch.manual_seed(1)
    src = [torch.randn(1, 8, 6, 6), torch.randn(1, 8, 3, 3)]
    tgt = [torch.randn(1, 8, 6, 6), torch.randn(1, 8, 3, 3)]
    loss = SpatialCorrelativeLoss(mode="cos", patch_nums=0, patch_size=64)
    per_query = spatial_query_losses(src[0], tgt[0])
    sims = self_similarity(torch.cat([src[0], tgt[0]]), torch.arange(36), 64, False)
    for q in (0, 7, 35):  # one query alone gives that query's loss
        single = masked_comparison(sims[:1, q : q + 1], sims[1:, q : q + 1], "cos", False)
        assert float(per_query.view(-1)[q]) == pytest.approx(float(single), abs=1e-6)
    full = spatial_loss_map(src, tgt, loss)
    assert full.shape == (6, 6)
    ids = [torch.arange(36), torch.arange(9)]
    assert float(full.mean()) == pytest.approx(float(loss(src, tgt, patch_ids=ids)), abs=1e-6)
