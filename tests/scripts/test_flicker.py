"""scripts/flicker.py's measurement: the warping error against a per-pixel loop, the exact flow of its camera
pans over the repository's real photo, and the pairs across a cut left out."""

import numpy as np
from PIL import Image

from helpers import PAINTING, PHOTO, load_script

flicker = load_script("scripts/flicker.py")


def photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def bilinear_by_hand(image: np.ndarray, x: float, y: float) -> np.ndarray:
    """image at (x, y), bilinear, the position clamped to the image (one pixel, loops)."""
    h, w = image.shape[:2]
    x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def test_warping_error_matches_a_per_pixel_loop():
    rng = np.random.default_rng(0)
    previous, current = rng.uniform(0, 255, (2, 7, 9, 3)).astype(np.float32)
    flow = rng.uniform(-2.5, 2.5, (7, 9, 2)).astype(np.float32)
    mask = rng.uniform(size=(7, 9)) > 0.3
    total, count = 0.0, 0
    for y in range(7):
        for x in range(9):
            if mask[y, x]:
                carried = bilinear_by_hand(previous.astype(np.float64), x + flow[y, x, 0], y + flow[y, x, 1])
                total += np.abs(current[y, x] - carried).mean()
                count += 1
    (got,) = flicker.warping_errors([previous, current], [flow], [mask])
    np.testing.assert_allclose(got, total / count, rtol=1e-5)


def test_a_whole_pixel_pan_of_the_photo_carries_each_frame_exactly_onto_the_next():
    """The pan's flow is exact: along it, the input frames of a pan by whole pixels match (0), and the same
    frames with the flow turned the wrong way do not."""
    frames, flows, masks = flicker.pan(photo(), 4, (48, 80), (3, 0))
    assert max(flicker.warping_errors(frames, flows, masks)) < 1e-4
    wrong = [-f for f in flows]
    assert min(flicker.warping_errors(frames, wrong, [flicker.inside(f) for f in wrong])) > 1.0


def test_the_pair_across_a_cut_is_left_out():
    painting = np.asarray(Image.open(PAINTING).convert("RGB"))
    shots = [flicker.pan(photo(), 3, (48, 80), (4, 0)), flicker.pan(painting, 4, (48, 80), (2, 0))]
    frames, flows, masks = flicker.with_cuts(shots)
    assert len(frames) == 7 and len(flows) == len(masks) == 6
    errors = flicker.warping_errors(frames, flows, masks)
    assert len(errors) == 5 and max(errors) < 1e-4  # the two shots' own pairs, each exact
