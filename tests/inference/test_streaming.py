"""inference/streaming.py: a generator run stage by stage in tiles, the middle included, equals the whole pass; the
memory budget picks tiles that fit it, and what cannot fit is refused with one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from inference import Translator
from inference.streaming import (
    FileMap,
    Moments,
    Scratch,
    compile_stages,
    memory_plan,
    parse_bytes,
    recomputed,
    run_stages,
    tile_plan,
    whole_pass_bytes,
)
from models.networks import build_generator
from tests.inference.test_tiling import photo_like
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
BOUND = 1e-5  # in output units of [0, 1], as test_tiling.py's


def generator(kind: str = "resnet_6blocks", antialias: bool = True, ngf: int = 8, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_generator(kind=kind, ngf=ngf, no_antialias=not antialias, no_antialias_up=not antialias).eval()


@pytest.mark.parametrize(
    "kind,antialias", [("resnet_9blocks", True), ("resnet_6blocks", False)], ids=["sc-cut", "cycle_gan"]
)
@pytest.mark.parametrize("side,in_memory", [(40, False), (96, True), (None, False)], ids=["40", "96", "budget"])
def test_streamed_equals_the_whole_pass(kind, antialias, side, in_memory):
    """Tiles of 40 image pixels are 10 pixels at the middle's quarter size: the residual blocks are split too.
    With map_bytes 0 every map larger than nothing goes through scratch files."""
    net = generator(kind, antialias)
    x = photo_like(148, 212)  # multiples of 4, so the generator's own padding is not involved
    with torch.no_grad():
        whole = net(x)
    program = compile_stages(net.model, 3, 4)
    out = run_stages(program, x, budget=8 << 20, map_bytes=(1 << 30) if in_memory else 0, side=side)
    assert out.shape == whole.shape
    assert float((out - whole).abs().max()) / 2 <= BOUND


def test_every_map_goes_to_scratch_files_or_is_recomputed_when_no_memory_is_allowed(monkeypatch):
    made = []
    original = FileMap.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append((self.channels, self.height, self.width))

    monkeypatch.setattr(FileMap, "__init__", spy)
    net = generator()
    program = compile_stages(net.model, 3, 4)
    run_stages(program, photo_like(64, 64), budget=8 << 20, map_bytes=0)
    # every map between stages (not the image, not the output) was a scratch file, or recomputed by its reader:
    # the full-size maps with statistics (two in the encoder, one in the decoder)
    again = recomputed(program, 64, 64, 0)
    assert sorted((program.maps[m].channels, program.maps[m].scale) for m in again) == [(8, 1), (8, 1), (16, 1)]
    assert len(made) + len(again) == len(program.maps) - 2
    assert (16, 32, 32) in made and (32, 16, 16) in made
    assert not recomputed(program, 64, 64, 1 << 30)  # with room in memory nothing is recomputed


def test_program_cuts_at_every_norm_and_keeps_each_residual_input():
    net = generator("resnet_6blocks")
    program = compile_stages(net.model, 3, 4)
    norms = [m for m in net.model.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    statistics = [spec for spec in program.maps if spec.stats]
    assert len(statistics) == len(norms) == 3 + 2 * 6 + 2
    sums = [stage for stage in program.stages if len(stage.terms) == 2]
    assert len(sums) == 6  # x + block(x) for every block: the last one read by the decoder's first stage
    assert sum(stage.keep is not None for stage in program.stages) == 5  # blocks 2..6 keep their input
    assert {stage.scale for stage in program.stages} == {0.5, 1, 2}


def test_moments_merge_tiles_exactly():
    """Chan's merge over uneven tiles = numpy's mean and variance of the whole, also where the mean dwarfs the
    spread (the centred fallback)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 50, 70)).astype(np.float32)
    data[2] += 1000.0
    moments = Moments(3)
    for y0, y1 in ((0, 7), (7, 31), (31, 50)):
        moments.add(torch.from_numpy(data[:, y0:y1]).contiguous(memory_format=torch.contiguous_format))
    mean, var = moments.mean_var()
    flat = data.reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(mean.numpy(), flat.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(var.numpy(), flat.var(axis=1), rtol=1e-4)


def test_file_maps_round_trip_bands_and_squares(tmp_path):
    scratch = Scratch(str(tmp_path))
    values = torch.randn(1, 5, 9, 13).contiguous(memory_format=torch.channels_last)
    saved = FileMap(5, 9, 13, scratch)
    saved.write(values[..., :4, :], 0, 0)  # a band of whole rows
    saved.write(values[..., 4:, :6], 4, 0)  # two squares
    saved.write(values[..., 4:, 6:], 4, 6)
    assert torch.equal(saved.read(0, 9, 0, 13, torch.device("cpu")), values)
    assert torch.equal(saved.read(2, 7, 3, 11, torch.device("cpu")), values[..., 2:7, 3:11])
    assert list(tmp_path.iterdir()) == []  # unlinked when made: nothing to leave behind
    saved.close()
    scratch.close()


def test_the_budget_sets_the_tiles_and_too_small_a_budget_is_refused():
    program = compile_stages(generator().model, 3, 4)
    for height, width, shape in ((1024, 1536, "square"), (4096, 128, "band")):  # whichever has less margin
        for budget in (8 << 20, 32 << 20):
            for stage, (rows, cols) in zip(program.stages, tile_plan(program, budget, height, width)):
                r = stage.radius
                assert (rows + 2 * r) * (cols + 2 * r) * stage.bytes_per_pixel <= budget  # with its margins
                assert rows % stage.align == 0 and cols % stage.align == 0
                full = cols == int(width * program.maps[stage.terms[0].map].scale)
                assert ("band" if full else "square") == shape
    with pytest.raises(UserError, match=r"^max_memory: 0.1 MiB left for tiles, but the generator's smallest tile"):
        tile_plan(program, 100_000, 1024, 1536)
    with pytest.raises(UserError, match=r"^max_memory: a 4096x3072 image needs 0\.\d\d GiB for its input and output"):
        memory_plan(program, 1, 3072, 4096, max_memory=256 << 20)
    assert memory_plan(program, 1, 64, 64, max_memory=64 << 30).whole
    plan = memory_plan(program, 1, 3072, 4096, max_memory=2 << 30)
    assert not plan.whole and 0 < plan.budget and plan.map_bytes > 0
    assert whole_pass_bytes(program, 3072, 4096) > 2 << 30


def test_parse_bytes():
    assert parse_bytes("1.5G") == 3 << 29 and parse_bytes("800M") == 800 << 20 and parse_bytes("2GiB") == 2 << 30
    assert parse_bytes("4096") == 4096
    for bad in ("", "G", "-1G", "lots"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


CHILD = r"""
import json, sys, torch
from inference.streaming import compile_stages, run_stages
from models.networks import build_generator


def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


torch.set_num_threads(1)
torch.manual_seed(0)
net = build_generator(kind="resnet_6blocks", ngf=16).eval()
program = compile_stages(net.model, 3, 4)
run_stages(program, torch.zeros(1, 3, 64, 64), budget=8 << 20)  # warm: torch's own allocations
x = torch.rand(1, 3, 1024, 1536) * 2 - 1
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from here
if sys.argv[1] == "whole":
    with torch.no_grad():
        net(x)
else:
    run_stages(program, x, budget=int(sys.argv[1]), map_bytes=0)
print(json.dumps({"before": before, "after": status("VmHWM")}))
"""


def peak_growth(mode: str) -> int:
    """How far the peak resident memory of a child process rises above where it stood, translating one image."""
    run = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    sizes = json.loads(run.stdout.strip().splitlines()[-1])
    return sizes["after"] - sizes["before"]


def test_memory_is_set_by_the_budget_not_the_image():
    """Peak RSS of a child process: a 1.5-megapixel image through a 16-channel generator grows the peak by the
    whole pass's maps, streamed with a 32 MiB budget by about the budget and the image's own tensors."""
    budget = 32 << 20
    images = 1024 * 1536 * 4 * (3 + 3)  # the input and the output map, held whatever the budget
    streamed, whole = peak_growth(str(budget)), peak_growth("whole")
    assert streamed <= 1.5 * budget + images, (streamed, whole)
    assert whole > 2 * streamed, (streamed, whole)


def test_translator_streams_what_does_not_fit_and_reads_paths(tmp_path, monkeypatch):
    """Translate with a max_memory too small for the whole pass: streamed (the spy sees it), the same pixels; an
    odd-sized photo takes the float path, also the same pixels."""
    torch.save(generator("resnet_9blocks", seed=3).state_dict(), tmp_path / "latest_net_G.pth")
    translator = Translator.load(tmp_path / "latest_net_G.pth")
    image = Image.fromarray(((photo_like(260, 200)[0].permute(1, 2, 0) + 1) * 127.5).byte().numpy())
    image.save(tmp_path / "photo.png")
    whole = np.asarray(translator.translate(image, max_memory=64 << 30)).astype(int)
    import inference.streaming as streaming

    calls = []
    original = streaming.run_stages
    monkeypatch.setattr(
        streaming, "run_stages", lambda *a, **k: calls.append((k["budget"], a[1].dtype)) or original(*a, **k)
    )
    from inference.streaming import resident_bytes

    allowed = resident_bytes() + (24 << 20)  # what the process holds, and 24 MiB more
    streamed = np.asarray(translator.translate(str(tmp_path / "photo.png"), max_memory=allowed)).astype(int)
    assert calls and calls[0][0] <= 12 << 20
    assert calls[0][1] == torch.uint8  # a photo is streamed from its bytes to bytes (sides multiples of 4)
    assert streamed.shape == whole.shape == (260, 200, 3)
    assert np.abs(streamed - whole).max() <= 1  # 8 bits: a difference within BOUND can only flip a rounding
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="^cannot read image .*broken.png"):
        translator.translate(str(tmp_path / "broken.png"))


def test_an_odd_photo_streams_through_floats_with_the_same_pixels(tmp_path):
    torch.save(generator("resnet_6blocks", seed=4).state_dict(), tmp_path / "latest_net_G.pth")
    translator = Translator.load(tmp_path / "latest_net_G.pth")
    image = Image.fromarray(((photo_like(150, 203)[0].permute(1, 2, 0) + 1) * 127.5).byte().numpy())
    from inference.streaming import resident_bytes

    whole = np.asarray(translator.translate(image, max_memory=64 << 30)).astype(int)
    streamed = np.asarray(translator.translate(image, max_memory=resident_bytes() + (24 << 20))).astype(int)
    assert streamed.shape == whole.shape == (150, 203, 3) and np.abs(streamed - whole).max() <= 1


def test_bf16_translates_stage_by_stage_close_to_fp32(tmp_path, monkeypatch):
    """amp='bf16' on the CPU always takes the stages (channels last, where oneDNN's bf16 convolutions are fast):
    the spy sees it for an image that fits whole; the result moves (autocast is used) but stays within 1e-2."""
    torch.save(generator("resnet_9blocks", seed=5).state_dict(), tmp_path / "latest_net_G.pth")
    x = (photo_like(96, 128) + 1) / 2
    fp32 = Translator.load(tmp_path / "latest_net_G.pth").translate(x)
    import inference.streaming as streaming

    calls = []
    original = streaming.run_stages
    monkeypatch.setattr(streaming, "run_stages", lambda *a, **k: calls.append(k["map_bytes"]) or original(*a, **k))
    bf16 = Translator.load(tmp_path / "latest_net_G.pth", amp="bf16").translate(x)
    assert calls and calls[0] > 96 * 128 * 4 * 64  # every map fits in memory: streamed for speed, not for room
    difference = float((bf16 - fp32).abs().max())
    assert 1e-5 < difference < 1e-2, difference
