"""One loader and one loop: every entry point that translates gives the same pixels, through inference/.

For every registered model (models.model_classes()) and, where it translates both ways, both directions, one
tiny run's translations of the same test images by test.py, test_fid.py, scripts/compare.py (for the models it
compares), translate.py and the API are identical, byte for byte. Each entry point runs with the package's
loop counted and with ``BaseModel.load_networks`` (the training side's loader) made to fail, so a script that
loaded or translated a model another way fails here.
"""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
import test_fid
import translate as translate_script
from evaluations.efficientnet_lite import EfficientNetLite0
from helpers import ROOT, load_script, run_script, train_tiny_runs, write_aligned, write_images
from inference import Translator
from models import model_classes
from models.base_model import BaseModel
from models.networks.stylegan2 import StyleGAN2Generator

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = model_classes()
CASES = [
    (name, direction)
    for name, cls in MODELS.items()
    for direction in (("AtoB", "BtoA") if cls.reverse_networks is not None else ("AtoB",))
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run of every registered model (one training step); the test split holds two images of
    different sizes on each side (testA translated AtoB, testB BtoA)."""
    base = tmp_path_factory.mktemp("entry_points")
    root = base / "data"
    write_images(root / "trainA", 1, seed=0)
    write_images(root / "trainB", 1, seed=1)
    for side, seed in (("A", 2), ("B", 3)):
        write_images(root / f"test{side}", 1, size=(40, 48), seed=seed)
        Image.fromarray((np.random.default_rng(seed + 10).random((36, 52, 3)) * 255).astype(np.uint8)).save(
            root / f"test{side}" / "img_1.png"
        )
    write_aligned(root)  # for a paired model
    ck = base / "ck"
    train_tiny_runs(MODELS, root, ck)
    features = base / "efficientnet_lite0.pth"  # random weights: the test compares translations, not scores
    torch.manual_seed(0)
    torch.save(EfficientNetLite0().state_dict(), features)
    return root, ck, features


@pytest.fixture
def package_loop(monkeypatch):
    """Count the inputs that pass through ``Translator.run`` (the one loop); loading a model through the
    training side's ``load_networks`` fails. The sinsc generator's test-time noise is seeded at every call,
    in every path alike."""
    passed = []
    run = Translator.run

    def counted(self, batch):
        results = run(self, batch)
        passed.extend(results)
        return results

    monkeypatch.setattr(Translator, "run", counted)

    def refused(self, *args, **kwargs):
        raise AssertionError("a model was loaded outside the inference package (BaseModel.load_networks)")

    monkeypatch.setattr(BaseModel, "load_networks", refused)
    forward = StyleGAN2Generator.forward

    def seeded(self, x):
        torch.manual_seed(0)
        return forward(self, x)

    monkeypatch.setattr(StyleGAN2Generator, "forward", seeded)
    return passed


def read_outputs(folder: Path, stems: list[str], count: int) -> dict[str, np.ndarray]:
    """``<stem>.png`` (one output) or ``<stem>_<k>.png`` (k = 1 .. count) of each input, as arrays."""
    names = (
        [f"{stem}.png" for stem in stems]
        if count == 1
        else [f"{stem}_{k}.png" for stem in stems for k in range(1, count + 1)]
    )
    return {name: np.asarray(Image.open(folder / name)) for name in names}


def outputs_of_test_py(name, direction, root, ck, tmp_path, monkeypatch, stems, count):
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
        tmp_path / "test_py",
        "--num_test",
        "0",
        "--preprocess",
        "none",
        "--direction",
        direction,
        "--dataset_mode",
        "unaligned",
    ]
    assert run_script(test_script, argv, monkeypatch) == 0
    images = tmp_path / "test_py" / name / "test_latest" / "images"
    cls = MODELS[name]
    if count == 1:
        return {f"{stem}.png": np.asarray(Image.open(images / cls.output_visual / f"{stem}.png")) for stem in stems}
    return {
        f"{stem}_{k}.png": np.asarray(Image.open(images / cls.numbered_output(k) / f"{stem}.png"))
        for stem in stems
        for k in range(1, count + 1)
    }


def outputs_of_test_fid(name, direction, root, ck, features, tmp_path, monkeypatch, stems, count):
    """test_fid.py's translations (main run whole; its scores, tested in test_eval_fid.py, are replaced by a
    count: the Frechet distance of 1280-d random features costs seconds and says nothing here)."""
    monkeypatch.setattr(test_fid, "realism_scores", lambda real, fake, *args, **kwargs: {"fid": float(len(fake))})
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
        tmp_path / "fid",
        "--preprocess",
        "none",
        "--direction",
        direction,
        "--dataset_mode",
        "unaligned",
        "--features",
        "efficientnet_lite0",
        "--feature_weights",
        features,
        "--epochs",
        "latest",
        "--prdc_k",
        "0",
        "--kid_subsets",
        "2",
        "--no_lpips",
        "--stats_cache",
        tmp_path / "cache",
        "--num_test",
        "0",
    ]
    assert run_script(test_fid, argv, monkeypatch) == 0
    return read_outputs(tmp_path / "fid" / name / "fid_test" / "epoch_latest", stems, count)


def outputs_of_translate_py(name, direction, split, ck, tmp_path, monkeypatch, stems, count):
    argv = [
        "--name",
        name,
        "--checkpoints_dir",
        ck,
        "--direction",
        direction,
        "--device",
        "cpu",
        split,
        tmp_path / "translate_py",
    ]
    assert run_script(translate_script, argv, monkeypatch) == 0
    return read_outputs(tmp_path / "translate_py", stems, count)


def outputs_of_compare(name, root, ck, tmp_path, monkeypatch, stems):
    """scripts/compare.py's translations of a run of ``name`` under the name of the method that trains it."""
    compare = load_script("scripts/compare.py")
    method = next((m for m, argv in compare.METHODS.items() if argv == ["--model", name]), None)
    if method is None:
        return None
    (tmp_path / "compare" / "checkpoints").mkdir(parents=True)
    (tmp_path / "compare" / "checkpoints" / method).symlink_to(ck / name, target_is_directory=True)
    args = compare.parse_args(
        ["--dataroot", str(root), "--output_dir", str(tmp_path / "compare"), "--n_epochs", "1", "--n_epochs_decay", "0"]
    )
    folder = compare.translate_method(args, method)
    return read_outputs(Path(folder), stems, 1)


@pytest.mark.parametrize("name,direction", CASES)
def test_every_entry_point_gives_the_same_pixels(name, direction, runs, tmp_path, monkeypatch, package_loop):
    root, ck, features = runs
    split = root / ("testA" if direction == "AtoB" else "testB")
    stems = sorted(p.stem for p in split.glob("*.png"))
    translator = Translator.load(name, checkpoints_dir=str(ck), direction=direction)
    api = {}
    for stem in stems:
        results = translator.translate(Image.open(split / f"{stem}.png"))
        results = results if isinstance(results, list) else [results]
        names = [f"{stem}.png"] if len(results) == 1 else [f"{stem}_{k}.png" for k in range(1, len(results) + 1)]
        api.update({n: np.asarray(r) for n, r in zip(names, results)})
    count = len(api) // len(stems)
    assert count == (10 if MODELS[name].multi_output else 1)  # mmsc: the test default --n_styles 10

    produced = {
        "test.py": lambda: outputs_of_test_py(name, direction, root, ck, tmp_path, monkeypatch, stems, count),
        "test_fid.py": lambda: outputs_of_test_fid(
            name, direction, root, ck, features, tmp_path, monkeypatch, stems, count
        ),
        "translate.py": lambda: outputs_of_translate_py(
            name, direction, split, ck, tmp_path, monkeypatch, stems, count
        ),
    }
    if direction == "AtoB":
        produced["scripts/compare.py"] = lambda: outputs_of_compare(name, root, ck, tmp_path, monkeypatch, stems)
    for entry_point, outputs_of in produced.items():
        package_loop.clear()
        outputs = outputs_of()
        if outputs is None:
            continue  # compare.py has no method of this model
        assert len(package_loop) == len(stems), f"{entry_point} did not translate through Translator.run"
        assert outputs.keys() == api.keys(), entry_point
        for file, image in api.items():
            np.testing.assert_array_equal(outputs[file], image, err_msg=f"{entry_point}: {file}")


def test_the_reversed_cycle_gan_is_scored_on_its_own_generator(runs):
    """The issue's case: against the trained direction cycle_gan translates with G_B, in test_fid.py too (its
    epochs are G_B's files), and not with G_A."""
    root, ck, _ = runs
    backward = Translator.load("cycle_gan", checkpoints_dir=str(ck), direction="BtoA")
    forward = Translator.load("cycle_gan", checkpoints_dir=str(ck))
    assert backward.files == {"G_A": "G_B"} and forward.files == {"G_A": "G_A"}
    assert Translator.epoch_network(backward.opt) == "G_B"
    g_b = torch.load(ck / "cycle_gan" / "latest_net_G_B.pth", weights_only=True)
    for key, value in backward.generator.state_dict().items():
        assert torch.equal(value, g_b[key]), key
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert (backward.translate(x) - forward.translate(x)).abs().max() > 1e-3


ENTRY_POINTS = [
    "test.py",
    "test_fid.py",
    "translate.py",
    "app.py",
    "export.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.py")),
]


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_no_entry_point_builds_or_loads_a_model_itself(path):
    """Only inference/ (and training) build a model and read its networks: no entry point calls
    create_model, load_networks, read_networks or a network builder to translate."""
    tree = ast.parse((ROOT / path).read_text())
    called = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert not called & {"create_model", "load_networks", "read_networks", "define_G", "build_generator"}, path


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports (``import a.b`` and ``from a.b import c``), top-level and inside functions."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_util_is_the_ground_floor():
    """util/ imports nothing from the layers above it (models/, inference/, data/, options/)."""
    for path in sorted((ROOT / "util").glob("*.py")):
        upward = {
            m
            for m in imported_modules(path)
            if m.split(".")[0] in ("models", "inference", "data", "options", "translator")
        }
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"


def test_inference_recognises_no_network_by_class_or_name():
    """inference/ reads declarations: no isinstance against a class defined in models/ but the declaration's own
    (InferenceTraits), and no comparison of a class's name."""
    project_classes = set()
    for path in (ROOT / "models").rglob("*.py"):
        project_classes |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)}
    project_classes.discard("InferenceTraits")
    for path in sorted((ROOT / "inference").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                # bare names only: nn.LayerNorm and the like are torch's, not a project class of the same name
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                assert not names & project_classes, f"{path.name}:{node.lineno} checks {names & project_classes}"
            if isinstance(node, ast.Compare):
                text = ast.unparse(node)
                assert "__name__" not in text, f"{path.name}:{node.lineno}: {text}"


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            ["--prdc_k", "2"],
            "--prdc_k 2: density and coverage need more than 2 real and generated images (got 2 and 2)",
        ),
        (["--epochs", "latest,7"], "--epochs latest,7: no 7 checkpoint"),
        (["--real_dir", "nowhere"], "--real_dir nowhere does not exist"),
        (["--paired", "--model", "mmsc", "--name", "mmsc"], "--paired: --model mmsc gives 10 outputs per input"),
    ],
)
def test_test_fid_checks_every_argument_before_translating(
    extra, message, runs, tmp_path, monkeypatch, capsys, package_loop
):
    root, ck, features = runs
    argv = [
        "--dataroot",
        root,
        "--checkpoints_dir",
        ck,
        "--name",
        "sc",
        "--gpu_ids",
        "-1",
        "--results_dir",
        tmp_path / "fid",
        "--features",
        "efficientnet_lite0",
        "--feature_weights",
        features,
        "--epochs",
        "latest",
        "--stats_cache",
        tmp_path / "cache",
    ] + extra
    assert run_script(test_fid, argv, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and message in err[-1], err  # one line (after any progress bar), naming the option
    assert not package_loop and not (tmp_path / "fid").exists()  # nothing was translated


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--dataroot", "nowhere"], "--dataroot (trainA) nowhere/trainA does not exist"),
        (["--real_dir", "nowhere"], "--real_dir nowhere does not exist"),
        (["--n_epochs", "-1"], "--n_epochs -1: must be 0 or more"),
        (["--crop_size", "300"], "--crop_size 300: must not exceed --load_size 286"),
        (["--train_args", "--ngf '8"], "--train_args"),
    ],
)
def test_compare_checks_every_argument_before_training(extra, message, runs, tmp_path, monkeypatch, capsys):
    root, _, _ = runs
    compare = load_script("scripts/compare.py")

    def no_training(argv):
        raise AssertionError("compare.py trained before checking its arguments")

    monkeypatch.setattr(compare, "run_train", no_training)
    argv = ["--dataroot", root, "--output_dir", tmp_path / "out", "--n_epochs", "1", "--n_epochs_decay", "0"]
    assert run_script(compare, argv + extra, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()
