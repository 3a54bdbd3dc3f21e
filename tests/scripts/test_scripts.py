"""The shell launchers, the dataset download script, the Cityscapes preparation and the smoke test.

No network: downloads go through stub ``curl`` / ``wget`` programs put first on PATH, and the
launchers run with ``PYTHON`` pointing at a stub that records its arguments.
"""

import glob
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from options.test_options import TestOptions
from options.train_options import TrainOptions
from helpers import load_script

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALL_SCRIPTS = sorted(
    glob.glob(os.path.join(REPO_ROOT, "scripts", "*.sh")) + glob.glob(os.path.join(REPO_ROOT, "datasets", "*.sh"))
)
OWN_SCRIPTS = [
    "scripts/train_sc.sh",
    "scripts/test_sc.sh",
    "scripts/train_mmsc.sh",
    "scripts/test_mmsc.sh",
    "scripts/demo_mmsc.sh",
    "scripts/train_cityscapes.sh",
    "scripts/test_cityscapes.sh",
    "scripts/smoke_test.sh",
    "datasets/download_cyclegan_dataset.sh",
]
DOWNLOAD = os.path.join(REPO_ROOT, "datasets", "download_cyclegan_dataset.sh")
DATASET_NAMES = [
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "cityscapes",
    "facades",
    "iphone2dslr_flower",
    "mini",
    "mini_pix2pix",
    "mini_colorization",
    "ae_photos",
    "grumpifycat",
]
URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{}.zip"


def write_executable(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def run_bash(script: str, *args: str, env: dict, cwd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", script, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ---- every shell script ---------------------------------------------------------------------


def test_scripts_found():
    names = {os.path.relpath(p, REPO_ROOT) for p in ALL_SCRIPTS}
    assert set(OWN_SCRIPTS) <= names


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_bash_syntax(path):
    result = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", ALL_SCRIPTS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_no_absolute_paths_or_fixed_gpus(path):
    with open(path) as f:
        text = f.read()
    forbidden = [
        r"/home/",
        r"/data/",
        r"/mnt/",
        r"/scratch/",
        r"--gpu_ids[ =]+['\"]?\d",
        r"CUDA_VISIBLE_DEVICES=\d",
        r"--(dataroot|checkpoints_dir|results_dir|name)[ =]+['\"]?/",
    ]
    for pattern in forbidden:
        assert not re.search(pattern, text), f"{path} matches {pattern}"


@pytest.mark.parametrize("relpath", OWN_SCRIPTS)
def test_own_script_header(relpath):
    with open(os.path.join(REPO_ROOT, relpath)) as f:
        lines = f.read().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert 'cd "$(dirname "$0")/.."' in lines


# ---- the train/test launchers, through a stub python ------------------------------------------


@pytest.fixture
def launch(stub_python):
    """(exit status, the working directory and arguments of the launcher's python call, or [] when it
    made none, stderr) through the shared stub interpreter (conftest.py)."""
    seen = [0]

    def call(relpath: str, *args: str, **env: str) -> tuple[int, list[str], str]:
        done, calls = stub_python(relpath, *args, **env)
        new, seen[0] = calls[seen[0] :], len(calls)
        assert len(new) <= 1, new
        return done.returncode, (new[0] if new else []), done.stderr

    return call


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


LAUNCHERS = [
    ("scripts/train_sc.sh", "train.py"),
    ("scripts/test_sc.sh", "test.py"),
    ("scripts/train_cityscapes.sh", "train.py"),
    ("scripts/test_cityscapes.sh", "test.py"),
]


@pytest.mark.parametrize("relpath,entry", LAUNCHERS)
def test_launcher_defaults(launch, relpath, entry):
    rc, lines, stderr = launch(relpath)
    assert rc == 0, stderr
    cwd, argv = lines[0], lines[1:]
    assert os.path.realpath(cwd) == os.path.realpath(REPO_ROOT)
    assert argv[0] == entry
    assert flag_value(argv, "--model") == "sc"
    assert "--gpu_ids" not in argv
    assert not flag_value(argv, "--dataroot").startswith("/")
    options = (TrainOptions if entry == "train.py" else TestOptions)(argv[1:]).parse()
    assert options.model == "sc" and options.name == flag_value(argv, "--name")


@pytest.mark.parametrize("relpath,entry", LAUNCHERS)
def test_launcher_environment_and_extra_arguments(launch, relpath, entry):
    rc, lines, stderr = launch(
        relpath, "--lr", "0.0002", "--no_html", GPU_IDS="0,1", DATAROOT="some/where", NAME="my_run"
    )
    assert rc == 0, stderr
    argv = lines[1:]
    assert flag_value(argv, "--gpu_ids") == "0,1"
    assert flag_value(argv, "--dataroot") == "some/where"
    assert flag_value(argv, "--name") == "my_run"
    assert argv[-3:] == ["--lr", "0.0002", "--no_html"]


def test_train_sc_variants(launch):
    _, fsesim, _ = launch("scripts/train_sc.sh")
    _, lsesim, _ = launch("scripts/train_sc.sh", VARIANT="lsesim")
    assert flag_value(fsesim, "--dataroot") == "./datasets/horse2zebra"
    assert flag_value(fsesim, "--name") == "h2z_fsesim" and flag_value(lsesim, "--name") == "h2z_lsesim"
    assert "--learned_attn" not in fsesim and "--augment" not in fsesim
    opt_f, opt_l = TrainOptions(fsesim[2:]).parse(), TrainOptions(lsesim[2:]).parse()
    assert not opt_f.learned_attn and not opt_f.augment and opt_f.patch_size == 64
    assert opt_l.learned_attn and opt_l.augment and opt_l.patch_size == 32
    _, test_lsesim, _ = launch("scripts/test_sc.sh", VARIANT="lsesim")
    assert flag_value(test_lsesim, "--name") == "h2z_lsesim"


@pytest.mark.parametrize("relpath", [p for p, _ in LAUNCHERS])
def test_launcher_rejects_unknown_variant(launch, relpath):
    rc, lines, stderr = launch(relpath, VARIANT="nosuch")
    assert rc == 2 and lines == []
    assert "VARIANT=nosuch" in stderr and "fsesim" in stderr and "lsesim" in stderr


def test_train_mmsc_writes_munits_schedule_in_epochs(launch, tmp_path):
    from models.schedulers import EpochFactor

    for split, count in (("trainA", 3), ("trainB", 5)):
        (tmp_path / "d" / split).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8)).save(tmp_path / "d" / split / f"{i}.png")
    env = dict(DATAROOT=str(tmp_path / "d"), MAX_ITERS="100", DECAY_EVERY="20", SNAPSHOT_EVERY="10")
    rc, lines, stderr = launch("scripts/train_mmsc.sh", "--no_html", **env)
    assert rc == 0, stderr
    argv = lines[1:]
    opt = TrainOptions(argv[1:]).parse()
    assert (opt.model, opt.batch_size, opt.crop_size, opt.lr, opt.weight_decay) == ("mmsc", 1, 256, 1e-4, 1e-4)
    assert (opt.lr_policy, opt.lr_decay_gamma, opt.max_iters, opt.n_epochs_decay) == ("step", 0.5, 100, 0)
    # 5 steps per epoch (the larger folder): 20 epochs, halved every 20 steps = 4 epochs, saved every 2
    assert (opt.n_epochs, opt.lr_decay_iters, opt.save_epoch_freq) == (20, 4, 2)
    factor = EpochFactor("step", opt.n_epochs, 0, 1, opt.lr_decay_iters, opt.lr_decay_gamma)
    assert [factor(epoch - 1) for epoch in (1, 4, 5, 9)] == [1.0, 1.0, 0.5, 0.25]
    assert argv[-1] == "--no_html" and "--gpu_ids" not in argv
    _, with_gpu, _ = launch("scripts/train_mmsc.sh", GPU_IDS="0", **env)
    assert flag_value(with_gpu, "--gpu_ids") == "0"
    assert opt.lambda_spatial == 10 and opt.lambda_cycle == 0 and not opt.learned_attn
    _, cycle, _ = launch("scripts/train_mmsc.sh", VARIANT="cycle", **env)
    opt = TrainOptions(cycle[2:]).parse()
    assert (opt.lambda_spatial, opt.lambda_cycle) == (0, 10)
    _, lsesim, _ = launch("scripts/train_mmsc.sh", VARIANT="lsesim", **env)
    assert TrainOptions(lsesim[2:]).parse().learned_attn
    rc, lines, stderr = launch("scripts/train_mmsc.sh", DATAROOT=str(tmp_path / "none"))
    assert rc == 2 and lines == [] and "none/trainA does not exist" in stderr
    rc, lines, stderr = launch("scripts/train_mmsc.sh", VARIANT="nosuch", **env)
    assert rc == 2 and "VARIANT=nosuch" in stderr
    rc, test, _ = launch("scripts/test_mmsc.sh", N_STYLES="4")
    opt = TestOptions(test[2:]).parse()
    assert rc == 0 and test[1] == "test.py" and (opt.model, opt.n_styles, opt.num_test) == ("mmsc", 4, 0)


def test_cityscapes_is_label_to_photo_on_aligned_data(launch):
    _, train, _ = launch("scripts/train_cityscapes.sh")
    _, test, _ = launch("scripts/test_cityscapes.sh")
    opt = TrainOptions(train[2:]).parse()
    assert (opt.dataset_mode, opt.direction, opt.dataroot) == ("aligned", "BtoA", "./datasets/cityscapes")
    topt = TestOptions(test[2:]).parse()
    assert (topt.dataset_mode, topt.direction, topt.phase, topt.num_test) == ("aligned", "BtoA", "val", 0)
    assert topt.name == opt.name == "cityscapes_fsesim"


# ---- the dataset download script ----------------------------------------------------------------


@pytest.fixture
def download_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DOWNLOADER", "BASE_URL")}
    env["DATASETS_DIR"] = str(tmp_path / "datasets")
    return env


@pytest.mark.parametrize("args", [["nosuch"], [], ["mini", "maps"]])
def test_download_bad_name_lists_names(download_env, tmp_path, args):
    result = run_bash(DOWNLOAD, *args, env=download_env, cwd=str(tmp_path))
    assert result.returncode == 2
    for name in DATASET_NAMES:
        assert re.search(rf"\b{name}\b", result.stderr), name
    assert not os.path.exists(download_env["DATASETS_DIR"])


def fake_downloader(folder, name: str, body: str) -> None:
    """A stub ``name`` in ``folder`` that appends its arguments to <folder>/<name>.args, then runs ``body``."""
    os.makedirs(folder, exist_ok=True)
    write_executable(
        os.path.join(folder, name), f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" >> "{folder}/{name}.args"\n{body}\n'
    )


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_download_failure_is_one_line_naming_the_url(download_env, tmp_path, tool):
    stubs = tmp_path / "bin"
    fake_downloader(str(stubs), tool, "exit 1")
    env = {**download_env, "PATH": f"{stubs}{os.pathsep}{download_env['PATH']}", "DOWNLOADER": tool}
    result = run_bash(DOWNLOAD, "horse2zebra", env=env, cwd=str(tmp_path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert URL.format("horse2zebra") in lines[0]
    assert URL.format("horse2zebra") in (stubs / f"{tool}.args").read_text().splitlines()
    assert os.listdir(download_env["DATASETS_DIR"]) == []


def test_download_prefers_curl_and_unpacks(download_env, tmp_path):
    archive = tmp_path / "mini.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("mini/trainA/a.jpg", b"fake image bytes")
    stubs = tmp_path / "bin"
    copy_to_output = 'while [ $# -gt 0 ]; do if [ "$1" = -o ]; then out=$2; fi; shift; done; cp "{}" "$out"'
    fake_downloader(str(stubs), "curl", copy_to_output.format(archive))
    fake_downloader(str(stubs), "wget", "exit 1")
    env = {**download_env, "PATH": f"{stubs}{os.pathsep}{download_env['PATH']}", "BASE_URL": "http://mirror.example"}
    result = run_bash(DOWNLOAD, "mini", env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "http://mirror.example/mini.zip" in (stubs / "curl.args").read_text().splitlines()
    assert not (stubs / "wget.args").exists()
    root = download_env["DATASETS_DIR"]
    assert sorted(os.listdir(root)) == ["mini"]
    with open(os.path.join(root, "mini", "trainA", "a.jpg"), "rb") as f:
        assert f.read() == b"fake image bytes"


def test_download_without_curl_or_wget(download_env, tmp_path):
    bare = tmp_path / "bare_bin"
    bare.mkdir()
    for tool in ("bash", "dirname", "mkdir", "rm", "grep", "tail"):
        os.symlink(shutil.which(tool), bare / tool)
    env = {**download_env, "PATH": str(bare)}
    result = subprocess.run(
        [str(bare / "bash"), DOWNLOAD, "maps"], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "neither curl nor wget" in result.stderr


# ---- datasets/prepare_cityscapes_dataset.py ----------------------------------------------------

# (split, city, frame id, photo colour, label colours left/right)
FRAMES = [
    ("train", "aachen", "000000_000019", (200, 10, 10), ((128, 64, 128), (70, 70, 70))),
    ("train", "aachen", "000001_000019", (10, 200, 10), ((107, 142, 35), (0, 0, 142))),
    ("train", "bremen", "000000_000019", (10, 10, 200), ((220, 20, 60), (70, 130, 180))),
    ("val", "bremen", "000005_000019", (120, 120, 20), ((244, 35, 232), (250, 170, 30))),
]


@pytest.fixture
def cityscapes_tree(tmp_path):
    """A fake release: 32x16 photos and colour label maps (left/right halves in two class colours)."""
    for split, city, frame, photo_colour, (label_left, label_right) in FRAMES:
        for tree in ("leftImg8bit", "gtFine"):
            os.makedirs(tmp_path / tree / split / city, exist_ok=True)
        stem = f"{city}_{frame}"
        photo_dir = tmp_path / "leftImg8bit" / split / city
        Image.new("RGB", (32, 16), photo_colour).save(photo_dir / f"{stem}_leftImg8bit.png")
        label = np.zeros((16, 32, 3), np.uint8)
        label[:, :16], label[:, 16:] = label_left, label_right
        Image.fromarray(label).save(tmp_path / "gtFine" / split / city / f"{stem}_gtFine_color.png")
        # Files the script must ignore: other gtFine products and a photo without a label map.
        Image.new("L", (32, 16), 7).save(tmp_path / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    lonely = tmp_path / "leftImg8bit" / "train" / "bremen" / "bremen_000009_000019_leftImg8bit.png"
    Image.new("RGB", (32, 16)).save(lonely)
    return tmp_path


def prepare_args(root, *extra):
    return [
        "--gtFine_dir",
        str(root / "gtFine"),
        "--leftImg8bit_dir",
        str(root / "leftImg8bit"),
        "--output_dir",
        str(root / "out"),
        *extra,
    ]


def test_prepare_pairs_sizes_and_halves(cityscapes_tree):
    prepare = load_script("datasets/prepare_cityscapes_dataset.py")
    assert prepare.main(prepare_args(cityscapes_tree, "--size", "16", "--ext", "png")) == 0
    out = cityscapes_tree / "out"
    for split in ("train", "val"):
        expected = sorted(f"{city}_{frame}.png" for s, city, frame, _, _ in FRAMES if s == split)
        assert sorted(os.listdir(out / split)) == expected
    for split, city, frame, photo_colour, (label_left, label_right) in FRAMES:
        image = np.asarray(Image.open(out / split / f"{city}_{frame}.png"))
        assert image.shape == (16, 32, 3)
        # A resized constant photo stays that colour (up to rounding); the label keeps exact colours.
        assert np.abs(image[:, :16].astype(int) - photo_colour).max() <= 1
        assert (image[:, 16:24] == label_left).all() and (image[:, 24:] == label_right).all()


def test_prepare_default_jpg_is_256(cityscapes_tree):
    prepare = load_script("datasets/prepare_cityscapes_dataset.py")
    assert prepare.main(prepare_args(cityscapes_tree, "--splits", "val")) == 0
    assert not (cityscapes_tree / "out" / "train").exists()
    image = Image.open(cityscapes_tree / "out" / "val" / "bremen_000005_000019.jpg")
    assert image.format == "JPEG" and image.size == (512, 256)
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[64:192, 32:224] - (120, 120, 20)).max() <= 8
    assert np.abs(pixels[64:192, 288:352] - (244, 35, 232)).max() <= 8


def test_prepare_errors_are_one_line_exit_2(cityscapes_tree):
    script = os.path.join(REPO_ROOT, "datasets", "prepare_cityscapes_dataset.py")
    cases = [
        (["--gtFine_dir", str(cityscapes_tree / "nope")], "--gtFine_dir"),
        (["--splits", "train,test"], "no 'test' folder"),
        (["--leftImg8bit_dir", str(cityscapes_tree / "gtFine")], "no 'train' pairs"),
    ]
    for override, message in cases:
        args = prepare_args(cityscapes_tree, *override)  # argparse: the later value wins
        result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
        # Every split is checked before anything is written.
        assert not (cityscapes_tree / "out").exists()


# ---- scripts/smoke_test.sh -----------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_test_runs_and_leaves_its_outputs(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path), "KEEP": "1"}
    env.pop("GPU_IDS", None)
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    result = run_bash(os.path.join(REPO_ROOT, "scripts", "smoke_test.sh"), env=env, cwd=str(tmp_path), timeout=300)
    after, elapsed = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - start
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "smoke test passed" in result.stdout
    # CPU seconds, not wall time: on an idle 2-core machine they bound the wall time, and unlike it
    # they do not grow when other jobs share the cores.
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert cpu < 60, f"smoke test used {cpu:.0f} CPU seconds ({elapsed:.0f} s wall)"
    (work,) = os.listdir(tmp_path)
    run_dir = tmp_path / work / "checkpoints" / "smoke"
    for name in ("latest_net_G.pth", "latest_train_state.pth", "loss_log.txt", "web/index.html"):
        assert (run_dir / name).stat().st_size > 0, name
    assert "(epoch: 2, iters: 1" in (run_dir / "loss_log.txt").read_text()
    assert (tmp_path / work / "results" / "smoke" / "test_latest" / "index.html").is_file()
    assert not os.path.exists(os.path.join(REPO_ROOT, "checkpoints", "smoke"))


def test_smoke_test_fails_when_outputs_are_missing(tmp_path):
    """With train.py and test.py doing nothing, the checks must catch it (and the temp dir goes)."""
    lazy = write_executable(
        str(tmp_path / "lazy_python"),
        f'#!/usr/bin/env bash\nif [ "$1" = - ]; then exec "{sys.executable}" "$@"; fi\nexit 0\n',
    )
    work = tmp_path / "tmp"
    work.mkdir()
    env = {**os.environ, "PYTHON": lazy, "TMPDIR": str(work)}
    env.pop("KEEP", None)
    result = run_bash(os.path.join(REPO_ROOT, "scripts", "smoke_test.sh"), env=env, cwd=str(tmp_path))
    assert result.returncode != 0
    assert "missing or empty: checkpoints/smoke/latest_net_G.pth" in result.stderr
    assert "missing or empty: results/smoke/test_latest/index.html" in result.stderr
    assert "did not report resuming" in result.stderr
    assert os.listdir(work) == []
