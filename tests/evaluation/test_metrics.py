"""Paired scores against direct loops / numpy."""

import numpy as np

from util.metrics import colour_distance, gaussian_window, psnr, ssim


def slow_ssim(x, y, size=11, sigma=1.5):
    w = gaussian_window(size, sigma)
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_window_loop():
    rng = np.random.default_rng(0)
    a = rng.random((16, 19))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    assert abs(ssim(a, b) - slow_ssim(a, b)) < 1e-10
    assert ssim(a, a) == 1.0 or abs(ssim(a, a) - 1.0) < 1e-12
    rgb = rng.random((14, 14, 3))
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert abs(ssim(rgb, rgb[::-1]) - slow_ssim(luma, luma[::-1])) < 1e-10


def test_psnr_and_colour_distance():
    a = np.zeros((4, 4, 3))
    b = np.full((4, 4, 3), 0.1)
    assert abs(psnr(a, b) - 20.0) < 1e-9
    assert psnr(a, a) == float("inf")
    assert colour_distance(a, b) == 0.0  # same histogram bin
    c = np.full((4, 4, 3), 0.9)
    assert colour_distance(a, c) == 1.0  # disjoint palettes
    half = np.concatenate([a[:2], c[:2]])
    assert abs(colour_distance(a, half) - 0.5) < 1e-12
