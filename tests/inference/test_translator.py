"""translator.py: the API translates as test.py does for every model, from every kind of source.

Sources: a run under --checkpoints_dir, a run folder, a lone generator file with the published key layouts
(CycleGAN pretrained, CUT / F-LSeSim), a folder laid out as a Hugging Face Hub repository, and a pre-filled
Hub cache read with HF_HUB_OFFLINE=1 (no network).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
from helpers import DATA, ROOT, reference_sections, run_script, train_tiny_runs, write_images
from models.networks import build_generator
from models.networks.stylegan2 import StyleGAN2Generator
from inference import Translator
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = ["sc", "cut", "cycle_gan", "sinsc", "mmsc"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run of every model (one training step), and its data (one 40x48 image per folder; testA's
    image is the one translated)."""
    base = tmp_path_factory.mktemp("translator")
    root = base / "data"
    for i, split in enumerate(["trainA", "trainB", "testA", "testB"]):
        write_images(root / split, 1, seed=i)
    ck = base / "ck"
    train_tiny_runs(MODELS, root, ck)
    return root, ck


@pytest.fixture
def seeded_noise(monkeypatch):
    """The sinsc generator draws per-pixel noise at test time: seed it at every call, in every path alike."""
    forward = StyleGAN2Generator.forward

    def seeded(self, x):
        torch.manual_seed(0)
        return forward(self, x)

    monkeypatch.setattr(StyleGAN2Generator, "forward", seeded)


def outputs_of_test_py(name, root, ck, tmp_path, monkeypatch) -> list[np.ndarray]:
    """The images test.py writes for the data's one image (testA's; sinsc: trainA's) at its own size."""
    argv = [
        "--dataroot",
        root,
        "--checkpoints_dir",
        ck,
        "--name",
        name,
        "--gpu_ids",
        "-1",
        "--results_dir",
        tmp_path,
        "--num_test",
        "1",
        "--preprocess",
        "none",
    ]
    assert run_script(test_script, argv, monkeypatch) == 0
    images = tmp_path / name / "test_latest" / "images"
    folders = sorted(
        (p for p in images.iterdir() if p.name.startswith("fake_B")),
        key=lambda p: int(p.name.rsplit("_", 1)[1]) if p.name != "fake_B" else 0,
    )
    return [np.asarray(Image.open(folder / "img_0.png")) for folder in folders]


@pytest.mark.parametrize("name", MODELS)
def test_api_gives_what_test_py_writes(name, runs, tmp_path, monkeypatch, seeded_noise):
    root, ck = runs
    expected = outputs_of_test_py(name, root, ck, tmp_path, monkeypatch)
    translator = Translator.load(name, checkpoints_dir=str(ck))
    split = "trainA" if name == "sinsc" else "testA"  # the singleimage data translate the one training photo
    result = translator.translate(Image.open(root / split / "img_0.png"))
    results = result if isinstance(result, list) else [result]
    assert translator.model_name == name and translator.multi_output == (name == "mmsc")
    assert len(results) == len(expected) == (10 if name == "mmsc" else 1)  # mmsc: the test default --n_styles 10
    for got, want in zip(results, expected):
        assert got.size == (48, 40)
        np.testing.assert_array_equal(np.asarray(got), want)


def test_run_folder_tensor_batch_and_attributes(runs):
    root, ck = runs
    by_name = Translator.load("sc", checkpoints_dir=str(ck))
    by_folder = Translator.load(ck / "sc")
    batch = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(0))
    out = by_folder.translate(batch)
    assert out.shape == (2, 3, 37, 45) and 0 <= float(out.min()) and float(out.max()) <= 1
    # the batch through the generator directly: (x * 2 - 1) in, (y + 1) / 2 out
    with torch.no_grad():
        direct = (by_name.generator(batch * 2 - 1) + 1) / 2
    torch.testing.assert_close(out, direct, rtol=0, atol=1e-6)
    assert not by_folder.generator.training
    assert by_folder.options["ngf"] == 8 and by_folder.options["direction"] == "AtoB"
    assert set(by_folder.networks) == {"G"} and by_folder.epoch == "latest"
    assert "sc" in by_folder.describe() and "ngf 8" in by_folder.describe()


def test_mmsc_styles_seed_and_style_images(runs):
    root, ck = runs
    translator = Translator.load("mmsc", checkpoints_dir=str(ck))
    image = Image.open(root / "testA" / "img_0.png")
    three = translator.translate(image, n_styles=3, seed=5)
    again = translator.translate(image, n_styles=3, seed=5)
    other = translator.translate(image, n_styles=3, seed=6)
    assert len(three) == 3 and [np.asarray(a).tolist() for a in three] == [np.asarray(a).tolist() for a in again]
    assert np.asarray(three[0]).tolist() != np.asarray(other[0]).tolist()
    guided = translator.translate(image, style_image=[str(root / "testB" / "img_0.png"), image])
    assert len(guided) == 2
    batch = translator.translate(torch.rand(2, 3, 36, 44), n_styles=4)
    assert batch.shape == (2, 4, 3, 36, 44)


def test_two_way_and_one_way_directions(runs):
    root, ck = runs
    forward = Translator.load("cycle_gan", checkpoints_dir=str(ck))
    backward = Translator.load("cycle_gan", checkpoints_dir=str(ck), direction="BtoA")
    saved = torch.load(ck / "cycle_gan" / "latest_net_G_B.pth", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in backward.generator.state_dict().items())
    assert not all(torch.equal(v, saved[k]) for k, v in forward.generator.state_dict().items())
    with pytest.raises(UserError, match="translates one way only"):
        Translator.load("sc", checkpoints_dir=str(ck), direction="BtoA")


def test_mistakes_are_one_line_user_errors(runs, tmp_path):
    root, ck = runs
    with pytest.raises(UserError, match="not a run in"):
        Translator.load("no_such_run", checkpoints_dir=str(ck))
    with pytest.raises(UserError, match="direction"):
        Translator.load("sc", checkpoints_dir=str(ck), direction="sideways")
    with pytest.raises(UserError, match="not an architecture option"):
        Translator.load("sc", checkpoints_dir=str(ck), options={"lr": 1.0})
    with pytest.raises(UserError, match="n_styles"):
        Translator.load("sc", checkpoints_dir=str(ck)).translate(Image.new("RGB", (8, 8)), n_styles=2)
    with pytest.raises(UserError, match="float tensor"):
        Translator.load("sc", checkpoints_dir=str(ck)).translate(torch.rand(3, 8, 8))
    broken = tmp_path / "latest_net_G.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="damaged"):
        Translator.load(broken)


# ---- published generator files -------------------------------------------------------------------


def published_state(section: str, key_file: str, antialias: bool, seed: int = 0) -> dict:
    """A state_dict with exactly the keys and shapes of a published generator (tests/fixtures key lists): random
    weights, and the fixed blur kernels (``filt``) the anti-aliased layers hold."""
    shapes = reference_sections(DATA / key_file)[section]
    kernels = {
        k: v
        for k, v in build_generator(
            kind="resnet_9blocks", init_type="normal", no_antialias=not antialias, no_antialias_up=not antialias
        )
        .state_dict()
        .items()
        if k.endswith(".filt")
    }
    generator = torch.Generator().manual_seed(seed)
    return {
        key: kernels[key] if key in kernels else torch.randn(shape, generator=generator) * 0.05
        for key, shape in shapes.items()
    }


def reference_translation(state: dict, image: Image.Image, antialias: bool) -> np.ndarray:
    """The published network rebuilt by hand (define_G with the published architecture), its output as 8 bits."""
    net = build_generator(
        kind="resnet_9blocks", init_type="normal", no_antialias=not antialias, no_antialias_up=not antialias
    )
    net.load_state_dict(state)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = net.eval()(x)[0]
    return torch.floor((y.double() + 1) * 127.5 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()


def test_cyclegan_pretrained_download_loads_in_api_test_py_and_translate_py(tmp_path, monkeypatch):
    """checkpoints/<name>_pretrained/latest_net_G.pth, as CycleGAN's download script lays it out."""
    import translate as translate_script

    state = published_state("net_G_A", "checkpoint_keys_cycle_gan.txt", antialias=False)
    folder = tmp_path / "ck" / "horse2zebra_pretrained"
    folder.mkdir(parents=True)
    torch.save(state, folder / "latest_net_G.pth")
    photos = tmp_path / "photos"
    write_images(photos, 1, size=(36, 44))
    image = Image.open(photos / "img_0.png")
    expected = reference_translation(state, image, antialias=False)

    translator = Translator.load("horse2zebra_pretrained", checkpoints_dir=str(tmp_path / "ck"))
    assert translator.model_name == "cycle_gan" and translator.options["no_antialias"]
    np.testing.assert_array_equal(np.asarray(translator.translate(image)), expected)
    lone = Translator.load(folder / "latest_net_G.pth")
    np.testing.assert_array_equal(np.asarray(lone.translate(image)), expected)

    argv = [
        "--dataroot",
        photos,
        "--name",
        "horse2zebra_pretrained",
        "--model",
        "test",
        "--no_dropout",
        "--checkpoints_dir",
        tmp_path / "ck",
        "--results_dir",
        tmp_path / "res",
        "--gpu_ids",
        "-1",
        "--preprocess",
        "none",
    ]
    assert run_script(test_script, argv, monkeypatch) == 0
    written = tmp_path / "res" / "horse2zebra_pretrained" / "test_latest" / "images" / "fake_B" / "img_0.png"
    np.testing.assert_array_equal(np.asarray(Image.open(written)), expected)

    argv = [
        "--name",
        "horse2zebra_pretrained",
        "--model",
        "test",
        "--checkpoints_dir",
        tmp_path / "ck",
        "--device",
        "cpu",
        photos,
        tmp_path / "out",
    ]
    assert run_script(translate_script, argv, monkeypatch) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "img_0.png")), expected)


def test_published_cut_or_flsesim_generator_file_loads_by_its_keys(tmp_path):
    """A lone anti-aliased net_G (CUT, FastCUT and F-LSeSim share the layout): no flags needed."""
    state = published_state("net_G", "checkpoint_keys_sc.txt", antialias=True, seed=1)
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (33, 47, 3), dtype=np.uint8))
    translator = Translator.load(path)
    assert translator.options["ngf"] == 64 and not translator.options["no_antialias"]
    np.testing.assert_array_equal(
        np.asarray(translator.translate(image)), reference_translation(state, image, antialias=True)
    )
    as_cut = Translator.load(path, model="cut")
    assert as_cut.model_name == "cut"
    np.testing.assert_array_equal(np.asarray(as_cut.translate(image)), np.asarray(translator.translate(image)))


# ---- Hugging Face Hub ----------------------------------------------------------------------------


def write_hub_folder(folder, run_dir, model: str, networks: list[str]) -> None:
    """What scripts/push_to_hub.py uploads, written here by hand: config.json and model.safetensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    options = json.loads((run_dir / "opt.json").read_text())
    tensors = {}
    for name in networks:
        for key, value in torch.load(run_dir / f"latest_net_{name}.pth", weights_only=True).items():
            tensors[f"{name}.{key}"] = value.contiguous()
    save_file(tensors, str(folder / "model.safetensors"))
    keep = (
        "netG",
        "ngf",
        "normG",
        "norm",
        "no_dropout",
        "no_antialias",
        "no_antialias_up",
        "input_nc",
        "output_nc",
        "direction",
        "style_dim",
        "n_downsample",
        "n_res",
        "mlp_dim",
        "mlp_layers",
    )
    config = {
        "library": "sesim",
        "model": model,
        "options": {k: options[k] for k in keep if k in options},
        "networks": networks,
        "epoch": "latest",
    }
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("name,networks", [("sc", ["G"]), ("mmsc", ["G_A", "G_B"]), ("cycle_gan", ["G_A", "G_B"])])
def test_hub_folder_loads_like_the_run(name, networks, runs, tmp_path):
    root, ck = runs
    write_hub_folder(tmp_path / "repo", ck / name, name, networks)
    image = torch.rand(1, 3, 36, 44, generator=torch.Generator().manual_seed(3))
    from_run, from_hub = Translator.load(name, checkpoints_dir=str(ck)), Translator.load(tmp_path / "repo")
    assert from_hub.model_name == name and from_hub.source == str(tmp_path / "repo")
    assert torch.equal(from_hub.translate(image, seed=1), from_run.translate(image, seed=1))
    if name == "cycle_gan":  # both generators published: the other direction works too
        back = Translator.load(tmp_path / "repo", direction="BtoA")
        assert torch.equal(
            back.translate(image), Translator.load(name, checkpoints_dir=str(ck), direction="BtoA").translate(image)
        )


def hub_cache(cache, repo_id: str, files_from) -> None:
    """The Hub cache layout huggingface_hub writes: models--owner--name/snapshots/<revision>/ + refs/main."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in ("config.json", "model.safetensors"):
        (snapshot / file).write_bytes((files_from / file).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


@pytest.mark.slow  # starts processes
def test_hub_id_loads_offline_from_the_cache(runs, tmp_path):
    root, ck = runs
    write_hub_folder(tmp_path / "repo", ck / "sc", "sc", ["G"])
    hub_cache(tmp_path / "cache", "someone/tiny-sc", tmp_path / "repo")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    code = (
        "import sys, torch; from translator import Translator; torch.set_num_threads(1); "
        "t = Translator.load(sys.argv[1]); x = torch.load(sys.argv[2]); torch.save(t.translate(x), sys.argv[3])"
    )
    image = torch.rand(1, 3, 36, 44, generator=torch.Generator().manual_seed(4))
    torch.save(image, tmp_path / "in.pt")
    done = subprocess.run(
        [sys.executable, "-c", code, "someone/tiny-sc", tmp_path / "in.pt", tmp_path / "out.pt"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    expected = Translator.load("sc", checkpoints_dir=str(ck)).translate(image)
    # another process: the same model up to float rounding (one full run of the suite saw the two processes'
    # results differ in their last bits); another model or source differs by 1e-2 and more
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, rtol=0, atol=1e-5)

    # a repository not in the cache: one line, exit status 2 (translate.py)
    done = subprocess.run(
        [
            sys.executable,
            "translate.py",
            "--name",
            "someone/missing",
            "--device",
            "cpu",
            tmp_path / "in.pt",
            tmp_path / "out",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: someone/missing: not in the Hugging Face cache ({tmp_path / 'cache'}) and HF_HUB_OFFLINE=1 "
        "forbids downloading it; load it once online, or unset HF_HUB_OFFLINE"
    ]


# ---- test.py's --num_test message ----------------------------------------------------------------


def test_test_py_says_when_num_test_cuts_the_split(runs, tmp_path, monkeypatch, capsys):
    root, ck = runs
    data = tmp_path / "data"
    write_images(data / "testA", 3)
    write_images(data / "testB", 1)
    argv = [
        "--dataroot",
        data,
        "--checkpoints_dir",
        ck,
        "--name",
        "sc",
        "--gpu_ids",
        "-1",
        "--results_dir",
        tmp_path / "res",
    ]
    assert run_script(test_script, argv + ["--num_test", "2"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "translated 2 of 3 images (--num_test 0 for all)" in out
    assert run_script(test_script, argv + ["--num_test", "0"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "translated 3 images" in out and "--num_test 0 for all" not in out


def test_translate_py_writes_one_file_per_style(runs, tmp_path, monkeypatch):
    import translate as translate_script

    root, ck = runs
    argv = [
        "--name",
        "mmsc",
        "--checkpoints_dir",
        ck,
        "--device",
        "cpu",
        "--n_styles",
        "2",
        "--seed",
        "3",
        root / "testA",
        tmp_path / "out",
    ]
    assert run_script(translate_script, argv, monkeypatch) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_0_1.png", "img_0_2.png"]
    expected = Translator.load("mmsc", checkpoints_dir=str(ck)).translate(
        Image.open(root / "testA" / "img_0.png"), n_styles=2, seed=3
    )
    for k, image in enumerate(expected, start=1):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"img_0_{k}.png")), np.asarray(image))
