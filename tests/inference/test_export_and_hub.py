"""export.py and scripts/push_to_hub.py on tiny trained runs of every model (no network).

export.py --check: onnxruntime against the translation API within ``export.CHECK_BOUND`` (1e-4) on a square and
a non-square size, for every model (in both directions where it has two). push_to_hub.py --dry_run: the folder
(files, YAML metadata, safetensors keys and values against the run's own .pth files, the card's command and
FID table), and loading it back (as a folder and from a pre-filled Hugging Face cache with HF_HUB_OFFLINE=1)
translates exactly as the run does. The upload itself needs the Hub and is not run here.
"""

import csv
import json
import re
import shlex
import shutil
import sys

import pytest
import torch
import yaml
from PIL import Image

import export as export_script
from helpers import load_script, train_argv, write_every_layout
from helpers import run_script as run
from models import model_classes
from options.train_options import TrainOptions
from inference import Translator

pytestmark = pytest.mark.usefixtures("one_thread")
train_script = load_script("train.py")
push = load_script("scripts/push_to_hub.py")

MODELS = model_classes()
# Every model in both test directions where it has two; the runs are named after the model.
CASES = [(n, d) for n, c in MODELS.items() for d in (("AtoB", "BtoA") if c.reverse_networks is not None else (None,))]
# cut's FastCUT preset as a run of its own, for the model card's command.
FASTCUT = ["--model", "cut", "--CUT_mode", "FastCUT"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """checkpoints folder with a 1-step run of each model (named after it), and the data."""
    root = tmp_path_factory.mktemp("export_hub")
    data = write_every_layout(root / "data")
    ck = root / "checkpoints"
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in MODELS:
            assert run(train_script, train_argv(name, data, ck, run=name) + ["--max_iters", "1"], monkeypatch) == 0
        fastcut = train_argv("cut", data, ck, run="fastcut") + FASTCUT[2:] + ["--max_iters", "1"]
        assert run(train_script, fastcut, monkeypatch) == 0
    return ck


# ---- export.py ---------------------------------------------------------------------------------------
CHECK_LINE = re.compile(r"check (\d+)x(\d+) \(batch \d+\): max \|onnxruntime - PyTorch\| = ([0-9.e+-]+)")


@pytest.mark.parametrize("name, direction", CASES)
def test_export_check_holds_the_bound(name, direction, runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "model.onnx"
    argv = ["--name", name, "--checkpoints_dir", runs, "--output", out, "--check"]
    argv += ["--direction", direction] if direction else []
    assert run(export_script, argv, monkeypatch) == 0
    found = CHECK_LINE.findall(capsys.readouterr().out)
    assert {(int(h), int(w)) for h, w, _ in found} == set(export_script.CHECK_SIZES)
    assert any(h != w for h, w in export_script.CHECK_SIZES)
    for _, _, diff in found:
        assert float(diff) < export_script.CHECK_BOUND
    assert out.stat().st_size > 10_000


def test_export_default_output_and_missing_onnxruntime(runs, monkeypatch, capsys):
    assert run(export_script, ["--name", "sc", "--checkpoints_dir", runs], monkeypatch) == 0
    assert (runs / "sc" / "sc_latest_AtoB.onnx").is_file()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    capsys.readouterr()
    assert run(export_script, ["--name", "sc", "--checkpoints_dir", runs, "--check"], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: onnxruntime is not installed; install it with: pip install onnxruntime"


# ---- push_to_hub.py ------------------------------------------------------------------------------------
FID_ROWS = [
    {"epoch": "1", "images": "2", "fid": "123.456", "kid": "0.0789"},
    {"epoch": "latest", "images": "2", "fid": "98.7654", "kid": "0.0543"},
]


def dry_run(runs, name, folder, monkeypatch, extra=()):
    argv = [
        "--name",
        name,
        "--repo_id",
        f"someone/{name}-lsesim",
        "--checkpoints_dir",
        runs,
        "--results_dir",
        runs.parent / "results",
        "--dry_run",
        folder,
        *extra,
    ]
    assert run(push, argv, monkeypatch) == 0
    return folder


def card_metadata(text):
    """The YAML block between the card's first two '---' lines, parsed."""
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_dry_run_builds_the_hub_folder(runs, tmp_path, monkeypatch):
    fid_dir = runs.parent / "results" / "sc" / "fid_test"
    fid_dir.mkdir(parents=True)
    with open(fid_dir / "fid.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(FID_ROWS[0]))
        writer.writeheader()
        writer.writerows(FID_ROWS)
    folder = dry_run(runs, "sc", tmp_path / "hub", monkeypatch, ["--license", "mit"])
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors", "sample.png"]

    # the weights: exactly the run's latest_net_G.pth, under "G.<key>", in safetensors (no pickle)
    from safetensors.torch import load_file

    tensors = load_file(folder / "model.safetensors")
    saved = torch.load(runs / "sc" / "latest_net_G.pth", map_location="cpu", weights_only=True)
    assert set(tensors) == {f"G.{k}" for k in saved}
    assert all(torch.equal(tensors[f"G.{k}"], v) for k, v in saved.items())

    # the config: the model and its architecture options as the run recorded them
    config = json.loads((folder / "config.json").read_text())
    opt = json.loads((runs / "sc" / "opt.json").read_text())
    assert config["library"] == "sesim" and config["model"] == "sc" and config["networks"] == ["G"]
    assert config["epoch"] == "latest"
    for key in ("netG", "ngf", "normG", "no_antialias", "no_antialias_up", "input_nc", "output_nc", "direction"):
        assert config["options"][key] == opt[key], key

    # the card: metadata, the training command, the FID table, the sample
    card = (folder / "README.md").read_text()
    meta = card_metadata(card)
    assert meta["library_name"] == "sesim" and meta["pipeline_tag"] == "image-to-image"
    assert {"image-to-image", "unpaired-image-translation", "sc"} <= set(meta["tags"])
    assert meta["license"] == "mit"
    assert 'Translator.load("someone/sc-lsesim")' in card
    for row in FID_ROWS:
        assert f"| {row['epoch']} | {row['images']} | {row['fid']} | {row['kid']} |" in card
    assert "![sample](sample.png)" in card
    command = re.search(r"```bash\n(python train\.py [^\n]+)\n```", card).group(1)
    assert "--ngf 8" in command and "--model sc" in command
    with Image.open(folder / "sample.png") as sample:
        first_test = Image.open(runs.parent / "data" / "testA" / "img_0.png")
        assert sample.size == (2 * first_test.width, first_test.height)  # input | translation


def test_card_command_gives_the_runs_options(runs, tmp_path, monkeypatch):
    """Parsing the card's command with train.py's options gives every option the run recorded (cut's FastCUT
    preset included: its flags are found through the preset's defaults)."""
    for name in ("fastcut", "mmsc"):
        card = (dry_run(runs, name, tmp_path / name, monkeypatch) / "README.md").read_text()
        command = re.search(r"```bash\n(python train\.py [^\n]+)\n```", card).group(1)
        parsed = vars(TrainOptions(shlex.split(command)[2:]).parse())
        recorded = json.loads((runs / name / "opt.json").read_text())
        for key, value in recorded.items():
            if key not in ("gpu_ids", "checkpoints_dir", "is_train"):
                assert push._same(parsed[key], value), (name, key, parsed[key], value)
        assert "No `test_fid.py` scores" in card


def image(seed, size=(37, 50)):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, *size, generator=generator)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_folder_translates_as_the_run(name, runs, tmp_path, monkeypatch):
    cls = MODELS[name]
    folder = dry_run(runs, name, tmp_path / "hub", monkeypatch)
    config = json.loads((folder / "config.json").read_text())
    # the test networks, and for a model whose reverse direction loads other files, those files' networks
    assert config["networks"] == sorted({*cls.test_networks, *(cls.reverse_networks or {}).values()})
    for direction in [d for n, d in CASES if n == name]:
        from_run = Translator.load(name, direction=direction, checkpoints_dir=str(runs))
        from_folder = Translator.load(str(folder), direction=direction)
        kwargs = {"seed": 5} | ({"n_styles": 2} if cls.multi_output else {})  # the seed fixes sinsc's noise too
        assert torch.equal(from_run.translate(image(1), **kwargs), from_folder.translate(image(1), **kwargs))


def test_round_trip_through_an_offline_hub_cache(runs, tmp_path, monkeypatch):
    """The dry-run folder placed in a Hugging Face cache as a download leaves it; with HF_HUB_OFFLINE=1,
    ``Translator.load("owner/name")`` reads it from there and translates as the run does."""
    from huggingface_hub import constants

    folder = dry_run(runs, "sc", tmp_path / "hub", monkeypatch)
    cache = tmp_path / "cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someone--sc-lsesim"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in ("config.json", "model.safetensors", "README.md"):
        shutil.copy(folder / file, snapshot / file)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = Translator.load("someone/sc-lsesim")
    from_run = Translator.load("sc", checkpoints_dir=str(runs))
    assert torch.equal(loaded.translate(image(2)), from_run.translate(image(2)))


def test_push_mistakes_are_one_line(runs, tmp_path, monkeypatch, capsys):
    argv = ["--name", "sc", "--repo_id", "not a repo id", "--checkpoints_dir", runs, "--dry_run", tmp_path / "x"]
    assert run(push, argv, monkeypatch) == 2
    assert capsys.readouterr().err.strip().startswith("error: --repo_id not a repo id:")
    argv = ["--name", "nothing", "--repo_id", "a/b", "--checkpoints_dir", runs, "--dry_run", tmp_path / "x"]
    assert run(push, argv, monkeypatch) == 2
    assert "--name nothing: no run folder" in capsys.readouterr().err


def test_the_docs_onnxruntime_example_runs(runs, tmp_path, monkeypatch):
    """docs/export_and_hub.md's Python example, as written, on a file export.py wrote: zebra.png is the API's
    translation (to within the rounding to 8 bits)."""
    from helpers import ROOT

    doc = (ROOT / "docs" / "export_and_hub.md").read_text()
    code = re.search(r"```python\n(import numpy as np\nimport onnxruntime.*?)```", doc, re.S).group(1)
    (tmp_path / "checkpoints" / "h2z").mkdir(parents=True)
    out = tmp_path / "checkpoints" / "h2z" / "h2z_latest_AtoB.onnx"
    assert run(export_script, ["--name", "sc", "--checkpoints_dir", runs, "--output", out], monkeypatch) == 0
    photo = Image.fromarray((torch.rand(29, 41, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy())
    photo.save(tmp_path / "horse.jpg")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs example", "exec"), {})
    with Image.open(tmp_path / "horse.jpg") as horse:
        expected = Translator.load("sc", checkpoints_dir=str(runs)).translate(horse)
    with Image.open(tmp_path / "zebra.png") as zebra:
        assert zebra.size == (41, 29)
        diff = torch.tensor(list(zebra.getdata())) - torch.tensor(list(expected.getdata()))
    assert diff.abs().max() <= 1
