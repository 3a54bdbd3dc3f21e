"""inference/tiling.py: tiled translation equals the untiled one for the ResNet generators (sc, cut; cycle_gan's
variant without anti-aliasing), and per-tile statistics would not."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from inference import Translator
from inference.tiling import ramp_weights, receptive_radius, tile_starts, translate_tiled
from models.networks import build_generator
from models.networks.munit import MUNITGenerator, MUNITTranslation
from models.networks.traits import InferenceTraits
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

# The largest |tiled - untiled| allowed, in output units of [0, 1] (docs/using_a_model.md): float rounding.
BOUND = 1e-5


def photo_like(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]: smooth random colours plus a left-to-right ramp, so tiles differ in statistics."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 16 + 2, width // 16 + 2, generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    ramp = torch.linspace(-0.5, 0.5, width).expand(1, 3, height, width)
    return (smooth * 2 - 1 + ramp).clamp(-1, 1)


def generator(antialias: bool, seed: int) -> torch.nn.Module:
    """A resnet_9blocks generator as sc / cut (anti-aliased) or cycle_gan (not) build it, random weights."""
    torch.manual_seed(seed)
    init = "xavier" if antialias else "normal"
    return build_generator(
        kind="resnet_9blocks", ngf=8, init_type=init, no_antialias=not antialias, no_antialias_up=not antialias
    ).eval()


@pytest.mark.parametrize("antialias,seed", [(True, 0), (True, 1), (False, 2)], ids=["sc", "cut", "cycle_gan"])
def test_tiled_equals_untiled_and_per_tile_statistics_do_not(antialias, seed):
    net = generator(antialias, seed)
    x = photo_like(301, 237)  # odd sides: padded as the generator pads them
    with torch.no_grad():
        whole = net(x)
    tiled = translate_tiled(net, x, tile=128)
    per_tile = translate_tiled(net, x, tile=128, overlap=64, statistics="tile")  # the same tiles, naively
    assert tiled.shape == whole.shape == (1, 3, 301, 237)
    assert float((tiled - whole).abs().max()) / 2 <= BOUND  # /2: [-1, 1] -> [0, 1]
    assert float((per_tile - whole).abs().max()) / 2 > 100 * BOUND


def test_translator_tiles_above_max_side(tmp_path):
    """translate(max_side=...) through the API, the generator loaded as a lone file."""
    torch.save(generator(True, 3).state_dict(), tmp_path / "latest_net_G.pth")
    translator = Translator.load(tmp_path / "latest_net_G.pth")
    image = Image.fromarray(((photo_like(260, 200)[0].permute(1, 2, 0) + 1) * 127.5).byte().numpy())
    whole = np.asarray(translator.translate(image)).astype(int)
    tiled = np.asarray(translator.translate(image, max_side=128)).astype(int)
    assert tiled.shape == whole.shape == (260, 200, 3)
    assert np.abs(tiled - whole).max() <= 1  # 8 bits: a difference within BOUND can only flip a rounding


def test_layout_helpers():
    starts = tile_starts(300, 128, 64, 4)
    assert starts[0] == 0 and starts[-1] == 300 - 128 and all(s % 4 == 0 for s in starts)
    assert all(a + 128 - b >= 64 for a, b in zip(starts, starts[1:]))
    weights = torch.zeros(300)
    for start, w in zip(starts, ramp_weights(300, starts, 128)):
        weights[start : start + 128] += w
    torch.testing.assert_close(weights, torch.ones(300))  # a partition of unity


def test_receptive_radius_of_a_known_stack():
    # two 3x3 convs and a 5x5 one: 1 + 1 + 2 pixels, plus up to 2 for the measured 4x4 output block
    stack = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.InstanceNorm2d(4),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.Conv2d(4, 4, 5, padding=2),
    )
    assert receptive_radius(stack, 3, 1) in (4, 5, 6)


def test_generators_with_whole_image_normalisation_are_refused():
    """Tiling reads what a network declares: mmsc's translation declares it cannot be tiled, a network that
    declares nothing is refused by name, and a torch layer norm inside a 'layers' declaration is refused too."""
    munit = MUNITTranslation(*[MUNITGenerator(3, ngf=8, n_res=1, mlp_dim=16) for _ in range(2)])
    with pytest.raises(UserError, match="mmsc net cannot be tiled: its decoder's adaptive instance norms"):
        translate_tiled(munit, torch.zeros(1, 3, 64, 64), tile=32, name="mmsc net")
    with pytest.raises(UserError, match="the encoder-decoder declares no inference traits"):
        translate_tiled(
            MUNITGenerator(3, ngf=8, n_res=1, mlp_dim=16),
            torch.zeros(1, 3, 64, 64),
            tile=32,
            name="the encoder-decoder",
        )

    class LayerNormed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 3, padding=1),
                torch.nn.GroupNorm(1, 4),
                torch.nn.Conv2d(4, 4, 3, stride=4, padding=1),
                torch.nn.Upsample(scale_factor=4),
                torch.nn.Conv2d(4, 3, 1),
            )
            self.inference = InferenceTraits(size_multiple=4, tiling="layers")

        def forward(self, x):
            return self.model(x)

    with pytest.raises(UserError, match="normalises over the whole image in 1"):
        translate_tiled(LayerNormed(), torch.zeros(1, 3, 64, 64), tile=32, name="it")
