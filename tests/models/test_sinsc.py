"""Single-image translation (--model sinsc): StyleGAN2 layers and networks, the singleimage dataset,
the model's defaults, a few training steps, test-time sizes and checkpoints."""

import math
import os
import subprocess
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from helpers import DATA, TINY, reference_sections, run_script as run
import test as test_script
import train as train_script
from data import DatasetLoader, create_dataset
from data.singleimage_dataset import CROPS_PER_EPOCH, SingleImageDataset, cut_patch, draw_zoom_and_grid
from models import create_model
from models.networks import build_discriminator, build_generator
from models.networks.stylegan2 import (
    Blur,
    ModulatedConv2d,
    NoiseInjection,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    blur2d,
    modulated_conv2d,
)
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError

REFERENCE_KEYS = DATA / "checkpoint_keys_sinsc.txt"
# The shared tiny options at the single-image demo's scale: batches of 2, 16 queries, logs every 2 images.
SINSC = TINY + [
    "--batch_size",
    "2",
    "--display_freq",
    "2",
    "--update_html_freq",
    "2",
    "--print_freq",
    "2",
    "--patch_nums",
    "16",
]


def shapes_of(net: torch.nn.Module) -> dict:
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def build_G(ngf: int = 8) -> torch.nn.Module:
    return build_generator(kind="stylegan2", ngf=ngf)


def build_D(ndf: int = 8) -> torch.nn.Module:
    return build_discriminator(kind="stylegan2", ndf=ndf)


# ---- layers ------------------------------------------------------------------------------------


def numpy_blur(x: np.ndarray, kernel: np.ndarray, pad: tuple) -> np.ndarray:
    """Slow loop: zero-pad, then correlate every channel with the kernel."""
    padded = np.pad(x, ((0, 0), (0, 0), pad, pad))
    k = kernel.shape[0]
    out = np.zeros(x.shape[:2] + (padded.shape[2] - k + 1, padded.shape[3] - k + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = (padded[:, :, i : i + k, j : j + k] * kernel).sum(axis=(2, 3))
    return out


@pytest.mark.parametrize("pad", [(2, 2), (2, 1), (1, 1), (0, 0)])
def test_blur_matches_a_loop_and_has_exact_gradients_of_two_orders(pad):
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    kernel = torch.rand(4, 4, dtype=torch.float64)  # not symmetric: checks the adjoint's flip
    expected = numpy_blur(x.numpy(), kernel.numpy(), pad)
    assert np.allclose(blur2d(x, kernel, pad).numpy(), expected)
    small = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: blur2d(t, kernel, pad), (small,), fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda t: blur2d(t, kernel, pad), (small,), fast_mode=True)


def test_blur_kernel_is_the_binomial_one_and_a_saved_buffer():
    blur = Blur(pad=(1, 1), gain=4.0)
    row = np.array([1.0, 3.0, 3.0, 1.0])
    assert np.allclose(blur.kernel.numpy(), 4.0 * np.outer(row, row) / 64.0)
    assert "kernel" in blur.state_dict() and not list(blur.parameters())


def loop_modulated_conv(x, weight, styles, upsample):
    """Per sample: build the modulated, demodulated weight explicitly and convolve one image."""
    outs = []
    for b in range(x.shape[0]):
        w = weight * styles[b][None, :, None, None]
        w = w / torch.sqrt((w**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xb = x[b : b + 1]
        if upsample:
            outs.append(F.conv_transpose2d(xb, w.transpose(0, 1), stride=2))
        else:
            outs.append(F.conv2d(xb, w, padding=w.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_conv_equals_per_sample_modulated_weights(upsample):
    x = torch.randn(3, 4, 6, 5, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    styles = torch.rand(3, 4, dtype=torch.float64) + 0.5
    expected = loop_modulated_conv(x, weight, styles, upsample)
    assert torch.allclose(modulated_conv2d(x, weight, styles, upsample=upsample), expected)
    ones = torch.ones(3, 4, dtype=torch.float64)
    assert torch.allclose(
        modulated_conv2d(x, weight, None, upsample=upsample), loop_modulated_conv(x, weight, ones, upsample)
    )


def test_modulated_conv_layer_with_a_style_and_upsampling():
    layer = ModulatedConv2d(4, 6, 3, style_dim=5, upsample=True)
    x, style = torch.randn(2, 4, 7, 9), torch.randn(2, 5)
    out = layer(x, style)
    assert out.shape == (2, 6, 14, 18)
    # Demodulation: a channel's output does not depend on the scale of its weights.
    scaled = ModulatedConv2d(4, 6, 3, style_dim=5, upsample=True)
    scaled.load_state_dict({**layer.state_dict(), "weight": layer.weight * 3.0})
    assert torch.allclose(scaled(x, style), out, atol=1e-5)
    with pytest.raises(ValueError, match="style"):
        layer(x)


def test_noise_injection_adds_weighted_noise_shared_over_channels():
    layer = NoiseInjection()
    x, noise = torch.randn(2, 3, 4, 5), torch.randn(2, 1, 4, 5)
    assert torch.equal(layer(x), x)  # the weight starts at 0
    with torch.no_grad():
        layer.weight.fill_(0.5)
    assert torch.allclose(layer(x, noise), x + 0.5 * noise.expand(-1, 3, -1, -1))


# ---- networks ----------------------------------------------------------------------------------


def test_default_networks_match_the_reference_checkpoint_keys():
    reference = reference_sections(REFERENCE_KEYS)
    assert shapes_of(build_G()) == reference["net_G"]
    assert shapes_of(build_D()) == reference["net_D"]


def test_registry_keeps_the_equalised_learning_rate_init():
    weight = build_G().encoder.convs[0][0].weight  # N(0, 1), not the framework's N(0, 0.02) init
    assert 0.7 < float(weight.detach().std()) < 1.3


@pytest.mark.parametrize("size", [(37, 23), (5, 3), (64, 48)])  # tests/networks/test_networks.py tries more
def test_generator_keeps_any_input_size(size):
    net = build_G(ngf=2).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, *size) * 2 - 1)
    assert y.shape == (2, 3, *size) and torch.isfinite(y).all()


def test_generator_pads_by_reflection_and_crops_back():
    net = StyleGAN2Generator(ngf=2, inject_noise=False).eval()
    x = torch.randn(1, 3, 13, 10)
    padded = F.pad(F.pad(x, (0, 2, 0, 0), mode="reflect"), (0, 0, 0, 3), mode="reflect")  # 16 x 12
    with torch.no_grad():
        assert torch.allclose(net(x), net.decoder(net.encoder(padded))[:, :, :13, :10], atol=1e-6)


def test_generator_output_is_tanh_of_the_last_layer_so_always_in_range():
    net = StyleGAN2Generator(ngf=2, inject_noise=False).eval()
    with torch.no_grad():
        net.decoder.convs[-1][0].weight.mul_(50)  # the last 1x1 layer: pre-tanh values far outside [-1, 1]
        hidden = net.encoder(torch.rand(2, 3, 16, 16) * 2 - 1)
        raw = net.decoder.convs(hidden)
        out = net.decoder(hidden)
    assert raw.abs().max() > 2
    assert torch.equal(out, torch.tanh(raw))
    assert out.abs().max() <= 1


def test_generator_parameters_do_not_depend_on_the_crop():
    shapes = {
        crop: shapes_of(
            create_model(TrainOptions(["--model", "sinsc", "--crop_size", str(crop)] + TINY[:4]).parse()).netG
        )
        for crop in (64, 128, 256)
    }
    assert shapes[64] == shapes[128] == shapes[256]


@pytest.mark.parametrize("size", [(128, 128), (64, 64), (96, 80), (33, 47)])
def test_discriminator_gives_one_logit_at_any_size(size):
    assert build_D(ndf=2)(torch.randn(2, 3, *size)).shape == (2, 1)


def test_discriminator_at_128_flattens_its_8x8_map_like_the_reference():
    net = StyleGAN2Discriminator(ndf=2)
    x = torch.randn(2, 3, 128, 128)
    features = net.final_conv(net.convs(x))
    assert features.shape[-2:] == (8, 8)
    assert torch.allclose(net(x), net.final_linear(features.reshape(2, -1)), atol=1e-6)


# ---- dataset -----------------------------------------------------------------------------------


def ramp_image(path: Path, width: int, height: int) -> None:
    """Red rises left to right, green top to bottom: a patch's slopes reveal its zoom and flip."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([x, y, np.full_like(x, 128)], -1).round().astype(np.uint8)).save(path)


@pytest.fixture
def pair(tmp_path):
    ramp_image(tmp_path / "pair" / "trainA" / "photo.png", 200, 150)
    ramp_image(tmp_path / "pair" / "trainB" / "painting.png", 120, 160)
    return tmp_path / "pair"


def train_opt(root, *extra):
    return TrainOptions(["--model", "sinsc", "--dataroot", str(root)] + SINSC + list(extra)).parse()


def zoom_of(patch: torch.Tensor, size: tuple) -> tuple:
    """(height zoom, width zoom, flipped) of a ramp patch: the original slope / the slope per pixel."""
    red, green = patch[0].double(), patch[1].double()
    width_slope = (red[:, -3] - red[:, 2]).median() / (red.shape[1] - 5)
    height_slope = (green[-3] - green[2]).median() / (green.shape[0] - 5)
    original = [2.0 / (side - 1) for side in size]  # the ramps run from -1 to 1
    return original[0] / float(height_slope), original[1] / abs(float(width_slope)), bool(width_slope < 0)


def test_patches_share_one_zoom_per_batch_within_the_range(pair):
    opt = train_opt(pair, "--batch_size", "4", "--random_scale_max", "3")
    loader = create_dataset(opt)
    loader.set_epoch(1)
    zooms, flips = [], []
    for _, batch in zip(range(6), loader):
        assert batch["A"].shape == (4, 3, 32, 32) and batch["B"].shape == (4, 3, 32, 32)
        measured = [zoom_of(p, (150, 200)) for p in batch["A"]]
        flips += [m[2] for m in measured]
        for axis in (0, 1):
            values = [m[axis] for m in measured]
            assert max(values) - min(values) < 0.05, values  # shared within the batch
            assert 1 / 3 - 0.05 < values[0] < 1 + 0.05
        zooms.append((measured[0][0], measured[0][1]))
    assert len({round(z, 2) for pair_ in zooms for z in pair_}) > 6  # drawn anew per batch and per axis
    assert any(flips) and not all(flips)
    _, _, flipped = zoom_of(create_dataset(train_opt(pair, "--no_flip")).dataset[5]["A"], (150, 200))
    assert not flipped


def test_patches_of_a_batch_come_from_distinct_grid_cells():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        plan = draw_zoom_and_grid((150, 200), 32, 3.0, generator)
        height, width = plan["size"]
        assert 32 <= height <= 150 and 32 <= width <= 200 and min(150 / height, 200 / width) <= 3.0 + 0.02
        image = torch.arange(height * width, dtype=torch.float64).reshape(1, height, width)
        cells = plan["grid"][0] * plan["grid"][1]
        corners = [float(cut_patch(image, plan, slot, 32)[0, 0, 0]) for slot in range(cells)]
        tops_lefts = {(int(c) // width, int(c) % width) for c in corners}
        assert len(tops_lefts) == cells
        assert all((t - plan["offset"][0]) % 32 == 0 and (left - plan["offset"][1]) % 32 == 0 for t, left in tops_lefts)
        assert all(cut_patch(image, plan, slot, 32).shape == (1, 32, 32) for slot in range(cells + 2))


def test_two_ranks_split_one_global_batch_with_one_zoom(pair, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    opt = train_opt(pair, "--batch_size", "2")
    dataset = SingleImageDataset(opt)
    zooms = []
    for rank in (0, 1):
        loader = DatasetLoader(dataset, batch_size=2, num_workers=0, shuffle=False, seed=0, rank=rank, world_size=2)
        loader.set_epoch(1)
        batch = next(iter(loader))
        zooms += [zoom_of(p, (150, 200))[:2] for p in batch["A"]]
    assert np.ptp(np.array(zooms), axis=0).max() < 0.05


def test_epoch_length_reproducibility_and_augment(pair):
    dataset = create_dataset(train_opt(pair, "--augment")).dataset
    assert len(dataset) == CROPS_PER_EPOCH
    assert len(create_dataset(train_opt(pair, "--max_dataset_size", "10"))) == 10
    dataset.set_epoch(1)
    first, again = dataset[3], dataset[3]
    assert torch.equal(first["A"], again["A"]) and torch.equal(first["B"], again["B"])
    dataset.set_epoch(2)
    assert not torch.equal(dataset[3]["A"], first["A"])
    assert first["A_aug"].shape == first["A"].shape and first["B_aug"].shape == first["B"].shape
    assert not torch.equal(first["A_aug"], first["A"])
    # Jitter changes colours, not positions: on grey patches (brightness and contrast only) the
    # augmented values are a non-decreasing function of the original ones, pixel by pixel.
    grey = create_dataset(train_opt(pair, "--augment", "--input_nc", "1", "--output_nc", "1")).dataset[0]
    order = torch.argsort(grey["A"].flatten())
    assert (grey["A_aug"].flatten()[order].diff() >= -1e-6).all()
    assert not torch.equal(grey["A_aug"], grey["A"])


def test_test_time_gives_the_whole_pair_once(pair):
    opt = TestOptions(
        ["--model", "sinsc", "--dataroot", str(pair), "--gpu_ids", "-1", "--checkpoints_dir", str(pair / "none")]
    ).parse()
    assert (opt.preprocess, opt.batch_size, opt.num_test, opt.netG, opt.ngf) == ("none", 1, 1, "stylegan2", 8)
    dataset = create_dataset(opt).dataset
    assert len(dataset) == 1
    item = dataset[0]
    assert item["A"].shape == (3, 150, 200) and item["B"].shape == (3, 160, 120)


@pytest.mark.parametrize(
    "layout,needle",
    [
        ({"trainA": ["a.png", "b.png"], "trainB": ["c.png"]}, "holds 2 images"),
        ({"trainA": ["a.png"], "trainB": []}, "has no images"),
        ({"trainA": ["a.png"]}, "does not exist"),
    ],
)
def test_dataset_errors_name_the_folder(tmp_path, layout, needle):
    for folder, names in layout.items():
        (tmp_path / folder).mkdir()
        for name in names:
            ramp_image(tmp_path / folder / name, 40, 40)
    with pytest.raises(UserError, match=needle):
        SingleImageDataset(train_opt(tmp_path))


def test_zoom_options_and_other_datasets_are_checked(pair):
    with pytest.raises(UserError, match="random_scale_max"):
        SingleImageDataset(train_opt(pair, "--random_scale_max", "0.5"))
    with pytest.raises(UserError, match="singleimage"):
        create_dataset(TrainOptions(["--dataroot", str(pair), "--preprocess", "zoom_and_patch"] + TINY[:4]).parse())


# ---- the model: defaults, training, test sizes, checkpoints ------------------------------------


def test_defaults_are_the_single_image_settings_and_overridable():
    opt = TrainOptions(["--model", "sinsc"]).parse()
    expected = dict(
        dataset_mode="singleimage",
        netG="stylegan2",
        netD="stylegan2",
        gan_mode="nonsaturating",
        lambda_gradient=1.0,
        lambda_spatial=10.0,
        ngf=8,
        ndf=8,
        lr=0.001,
        beta1=0.0,
        beta2=0.99,
        crop_size=128,
        preprocess="zoom_and_patch",
        batch_size=16,
        n_epochs=4,
        n_epochs_decay=4,
        random_scale_max=3.0,
        save_epoch_freq=1,
        pool_size=0,
    )
    assert {k: getattr(opt, k) for k in expected} == expected
    changed = TrainOptions(
        [
            "--model",
            "sinsc",
            "--ngf",
            "16",
            "--lr",
            "0.002",
            "--crop_size",
            "64",
            "--gan_mode",
            "lsgan",
            "--batch_size",
            "4",
        ]
    ).parse()
    assert (changed.ngf, changed.lr, changed.crop_size, changed.gan_mode, changed.batch_size) == (
        16,
        0.002,
        64,
        "lsgan",
        4,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A sinsc run of 3 steps (ngf 4, ndf 4) on a tiny pair whose photo is 50 x 37 pixels."""
    root = tmp_path_factory.mktemp("sinsc")
    ramp_image(root / "pair" / "trainA" / "photo.png", 50, 37)
    ramp_image(root / "pair" / "trainB" / "painting.jpg", 64, 48)
    argv = (
        [
            "--model",
            "sinsc",
            "--dataroot",
            root / "pair",
            "--name",
            "run",
            "--checkpoints_dir",
            root / "ck",
            "--max_iters",
            "3",
        ]
        + SINSC
        + ["--ngf", "4", "--ndf", "4"]
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert run(train_script, argv, monkeypatch) == 0
    return root


def test_training_steps_save_checkpoints_and_log_losses(trained):
    folder = trained / "ck" / "run"
    assert {"latest_net_G.pth", "latest_net_D.pth", "opt.json"} <= {p.name for p in folder.iterdir()}
    log = (folder / "loss_log.txt").read_text()
    for name in ("G_GAN", "G_s", "D_real", "D_fake", "D_Gradient"):
        values = [float(v) for v in re.findall(rf"{name}: (\S+)", log)]
        assert values and all(math.isfinite(v) for v in values), name


def test_one_step_keeps_parameters_and_reports_every_loss(trained):
    opt = train_opt(trained / "pair", "--ngf", "4", "--ndf", "4")
    model = create_model(opt)
    model.setup()
    count = sum(p.numel() for net in model.networks().values() for p in net.parameters())
    before = {k: v.clone() for k, v in model.netG.state_dict().items()}
    loader = create_dataset(opt)
    loader.set_epoch(1)
    model.set_input(next(iter(loader)))
    model.optimize_parameters()
    assert set(model.loss_parts) == set(model.loss_names)
    assert all(torch.isfinite(v) for v in model.loss_parts.values())
    assert sum(p.numel() for net in model.networks().values() for p in net.parameters()) == count
    key = "decoder.convs.3.conv.weight"
    assert not torch.equal(before[key], model.netG.state_dict()[key])


def test_test_py_translates_the_whole_photo_at_its_size(trained, monkeypatch):
    results = trained / "results"
    argv = [
        "--dataroot",
        trained / "pair",
        "--name",
        "run",
        "--checkpoints_dir",
        trained / "ck",
        "--results_dir",
        results,
        "--gpu_ids",
        "-1",
    ]
    assert run(test_script, argv, monkeypatch) == 0
    page = results / "run" / "test_latest"
    assert (page / "index.html").is_file()
    assert Image.open(page / "images" / "fake_B" / "photo.png").size == (50, 37)
    # Any other photo, through the single-folder dataset: output the size of the input.
    ramp_image(trained / "other" / "wide.png", 83, 29)
    argv = [
        "--dataroot",
        trained / "other",
        "--dataset_mode",
        "single",
        "--name",
        "run",
        "--checkpoints_dir",
        trained / "ck",
        "--results_dir",
        results,
        "--gpu_ids",
        "-1",
    ]
    assert run(test_script, argv, monkeypatch) == 0
    assert Image.open(page / "images" / "fake_B" / "wide.png").size == (83, 29)


def test_checkpoint_round_trip_gives_the_same_generator(trained):
    opt = TestOptions(
        [
            "--dataroot",
            str(trained / "pair"),
            "--name",
            "run",
            "--checkpoints_dir",
            str(trained / "ck"),
            "--gpu_ids",
            "-1",
        ]
    ).parse()
    assert (opt.model, opt.netG, opt.ngf) == ("sinsc", "stylegan2", 4)  # from the run's opt.json
    model = create_model(opt)
    untrained = {k: v.clone() for k, v in model.netG.state_dict().items()}
    model.setup(epoch="latest")
    assert any(not torch.equal(untrained[k], v) for k, v in model.netG.state_dict().items())  # it did load
    model.save_networks("copy")
    again = create_model(opt)
    again.setup(epoch="copy")
    x = torch.rand(1, 3, 37, 50) * 2 - 1
    with torch.no_grad():
        torch.manual_seed(1)
        first = model.netG(x)
        torch.manual_seed(1)
        second = again.netG(x)
    assert torch.equal(first, second)


# ---- scripts -----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def launch(stub_python):
    """(the bash process, the arguments of every python call so far) of ``scripts/<script>``, through the
    shared stub interpreter (conftest.py)."""

    def call(script: str, **env: str) -> tuple:
        done, calls = stub_python(f"scripts/{script}", **env)
        return done, [argv[1:] for argv in calls]

    return call


def test_train_script_copies_the_pair_and_spells_out_the_defaults(launch, pair, tmp_path):
    photo, painting = pair / "trainA" / "photo.png", pair / "trainB" / "painting.png"
    result, calls = launch(
        "train_sinsc.sh", PHOTO=str(photo), PAINTING=str(painting), NAME="mine", PAIRS_DIR=str(tmp_path / "pairs")
    )
    assert result.returncode == 0, result.stderr
    argv = calls[0]
    assert argv[0] == "train.py"
    assert sorted(p.name for p in (tmp_path / "pairs" / "mine").rglob("*.png")) == ["painting.png", "photo.png"]
    opt = TrainOptions(argv[1:]).parse()
    assert opt.dataroot == str(tmp_path / "pairs" / "mine") and opt.name == "mine"
    assert vars(opt) == vars(TrainOptions(["--model", "sinsc", "--dataroot", opt.dataroot, "--name", "mine"]).parse())
    result, calls = launch("train_sinsc.sh", PHOTO=str(photo))
    assert result.returncode == 2 and "PAINTING" in result.stderr and len(calls) == 1  # no new call


def test_test_script_translates_the_run_photo_or_any_photo(launch, pair, tmp_path):
    result, calls = launch("test_sinsc.sh", NAME="mine", DATAROOT=str(pair))
    assert result.returncode == 0, result.stderr
    opt = TestOptions(calls[0][1:]).parse()
    assert (opt.dataset_mode, opt.dataroot, opt.preprocess, opt.num_test) == ("singleimage", str(pair), "none", 1)
    result, calls = launch(
        "test_sinsc.sh", NAME="mine", PHOTO=str(pair / "trainA" / "photo.png"), PAIRS_DIR=str(tmp_path / "pairs")
    )
    assert result.returncode == 0, result.stderr
    opt = TestOptions(calls[1][1:]).parse()
    assert opt.dataset_mode == "single" and (Path(opt.dataroot) / "photo.png").is_file()


@pytest.mark.slow
def test_demo_script_runs_end_to_end_and_writes_a_full_size_result(tmp_path):
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "NAME": "demo",
        "CHECKPOINTS_DIR": str(tmp_path / "ck"),
        "RESULTS_DIR": str(tmp_path / "results"),
        "CROPS": "2",
        "CROP": "32",
        "BATCH": "1",
    }
    result = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "demo_sinsc.sh"),
            "--vgg_weights",
            "random",
            "--ngf",
            "2",
            "--ndf",
            "2",
            "--patch_nums",
            "16",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    page = tmp_path / "results" / "demo" / "test_latest"
    assert f"{page}/index.html" in result.stdout and (page / "index.html").is_file()
    photo = Image.open(ROOT / "datasets" / "single_demo" / "trainA" / "home.jpg")
    assert Image.open(page / "images" / "fake_B" / "home.png").size == photo.size
    strip = Image.open(tmp_path / "results" / "demo" / "demo_strip.png")
    assert strip.height == photo.height and strip.width > 2 * photo.width
