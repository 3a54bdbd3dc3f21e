"""Never lose a run: a save is committed whole or not at all, non-finite steps are skipped and stop the run,
one train.py per checkpoints folder, and a damaged 'latest' falls back to the previous complete save."""

import errno
import os
import subprocess
import sys
import warnings

import pytest
import torch

import train as train_script
from helpers import ROOT, TINY, on_save_operations, train_argv, poison_losses, poison_training, write_images
from helpers import run_script as run
from models import create_model, model_classes
from options.train_options import TrainOptions
from util import commit
from util.seeding import seed_everything


class Died(BaseException):
    """Stands for kill -9: no except clause of the code under test catches it, no cleanup of a save runs."""


def argv(data, ck, name, *extra):
    """TINY without pictures; 'latest' after every step and the networks at every epoch's end."""
    quiet = [
        "--display_freq",
        "1000",
        "--update_html_freq",
        "1000",
        "--no_html",
        "--print_freq",
        "1000",
        "--save_latest_freq",
        "1",
        "--save_epoch_freq",
        "1",
    ]
    return ["--dataroot", data, "--name", name, "--checkpoints_dir", ck] + TINY + quiet + list(extra)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a, b, where=""):
    """Bit for bit: tensors torch.equal (dtype and shape included), everything else ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}.{i}")
    else:
        assert a == b, where


def assert_same_save(dir_a, dir_b, tag="latest", state=True):
    """Two saves hold the same networks and (without the options and the logger) the same training state."""
    for net in ("G", "D"):
        assert_same(load(dir_a / f"{tag}_net_{net}.pth"), load(dir_b / f"{tag}_net_{net}.pth"), f"{tag} {net}")
    if state:
        a, b = load(dir_a / f"{tag}_train_state.pth"), load(dir_b / f"{tag}_train_state.pth")
        for part in ("counters", "rng", "world_size"):
            assert_same(a[part], b[part], f"{tag} state {part}")
        # A resume rebuilds the (linear) schedule at its epoch, so its own step count differs; the rates
        # it gives are in the optimisers' param_groups, compared here.
        for part in ("optimizers", "scaler", "extra"):
            assert_same(a["model"][part], b["model"][part], f"{tag} state model {part}")


def no_leftovers(folder):
    """No pending file, commit marker or lock is left behind."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name == "train.lock"] == []


@pytest.fixture(scope="module")
def straight(tiny, tmp_path_factory):
    """The uninterrupted run, and every file operation of its saves as (operation, file name)."""
    ck = tmp_path_factory.mktemp("straight")
    operations = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        on_save_operations(monkeypatch, lambda op, path: operations.append((op, os.path.basename(path))))
        assert run(train_script, argv(tiny, ck, "run"), monkeypatch) == 0
    return ck / "run", operations


def save_ranges(operations):
    """[first, last] operation index (1-based) of each save: a save ends with the removal of its marker."""
    ranges, start = [], 1
    for i, (op, name) in enumerate(operations, 1):
        if op == "remove" and name.endswith(".commit"):
            ranges.append((start, i, name))
            start = i + 1
    return ranges


def die_at(monkeypatch, n):
    """Make the n-th file operation of the coming saves (counted from 1) die before it happens."""
    count = [0]

    def hook(op, path):
        count[0] += 1
        if count[0] == n:
            raise Died(f"{op} {path}")

    on_save_operations(monkeypatch, hook)


@pytest.mark.slow
def test_a_save_torn_at_any_file_operation_resumes_exactly(tiny, straight, tmp_path, monkeypatch, capsys):
    reference, operations = straight
    ranges = save_ranges(operations)
    # The run's saves: latest after step 1 (the first save), after step 2, epoch 1's networks, latest at
    # the end of epoch 1, ... The first save and the end of epoch 1 (its networks, then latest) are torn.
    assert [name for *_, name in ranges[:4]] == [".latest.commit", ".latest.commit", ".1.commit", ".latest.commit"]
    first, epoch_end = ranges[0], (ranges[2][0], ranges[3][1])
    commit_point = next(i for i, (op, name) in enumerate(operations, 1) if op == "replace" and name.endswith(".commit"))
    points = list(range(first[0], first[1] + 1)) + list(range(epoch_end[0], epoch_end[1] + 1))
    assert len(points) == 9 + 7 + 12  # 3 + 2 files written, marker, renames (3 onto prev_latest), marker removed
    for n in points:
        ck = tmp_path / f"tear{n}"
        die_at(monkeypatch, n)
        with pytest.raises(Died):
            run(train_script, argv(tiny, ck, "run"), monkeypatch)
        on_save_operations(monkeypatch, None)
        capsys.readouterr()
        code = run(train_script, argv(tiny, ck, "run", "--continue_train"), monkeypatch)
        out, err = capsys.readouterr()
        if n <= commit_point:  # died before the first save was committed: nothing to resume
            assert code == 2 and len(err.strip().splitlines()) == 1 and "no resumable 'latest'" in err, (n, err)
            continue
        assert code == 0, (n, err)
        for tag in ("latest", "1", "2"):
            assert_same_save(reference, ck / "run", tag, state=tag == "latest")
        assert_same_save(reference, ck / "run", "prev_latest")
        assert no_leftovers(ck / "run"), n


def test_readers_see_a_committed_save_before_it_is_in_place(tiny, straight, tmp_path, monkeypatch):
    """Died after the commit point of the save at the end of epoch 1, after G moved: test.py's reader gets D too."""
    reference, operations = straight
    start, end, _ = save_ranges(operations)[3]
    moved_g = next(i for i in range(start, end + 1) if operations[i - 1] == ("replace", "latest_net_G.pth"))
    die_at(monkeypatch, moved_g + 1)
    with pytest.raises(Died):
        run(train_script, argv(tiny, tmp_path, "run"), monkeypatch)
    folder = tmp_path / "run"
    assert (folder / ".latest.commit").exists() and (folder / ".latest_net_D.pth.pending").exists()
    opt = TrainOptions([str(a) for a in argv(tiny, tmp_path, "run")]).parse()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(opt)
    networks = model.read_networks("latest")
    # That save holds the weights of the end of epoch 1, which the straight run also saved as 1_net_*.
    for name in ("G", "D"):
        assert_same(networks[name][1], load(reference / f"1_net_{name}.pth"), name)


def test_a_full_disk_on_the_second_file_keeps_the_previous_save(tiny, straight, tmp_path, monkeypatch, capsys):
    reference, operations = straight
    second_save = save_ranges(operations)[1][0]
    count = [0]

    def full(op, path):
        count[0] += 1
        if count[0] == second_save + 1:  # the second file written by the second save: latest_net_D
            assert op == "write" and path.endswith(".latest_net_D.pth.pending")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    on_save_operations(monkeypatch, full)
    assert run(train_script, argv(tiny, tmp_path, "run"), monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "latest_net_D.pth" in err and "No space left on device (ENOSPC)" in err and "previous 'latest'" in err
    folder = tmp_path / "run"
    assert no_leftovers(folder)
    # The previous save (after step 1) is whole: its networks and state pair up; resume ends as the straight run.
    state = load(folder / "latest_train_state.pth")
    assert state["counters"]["steps"] == 1
    on_save_operations(monkeypatch, None)
    assert run(train_script, argv(tiny, tmp_path, "run", "--continue_train"), monkeypatch) == 0
    assert_same_save(reference, folder)


def test_a_truncated_latest_resumes_from_the_previous_save(tiny, straight, tmp_path, monkeypatch, capsys):
    reference, _ = straight
    assert run(train_script, argv(tiny, tmp_path, "run", "--max_iters", "3"), monkeypatch) == 0
    folder = tmp_path / "run"
    assert load(folder / "prev_latest_train_state.pth")["counters"]["steps"] == 2
    path = folder / "latest_train_state.pth"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    capsys.readouterr()
    assert run(train_script, argv(tiny, tmp_path, "run", "--continue_train"), monkeypatch) == 0
    out = capsys.readouterr().out
    assert "'latest' is unreadable" in out and "resuming from the older complete save 'prev_latest'" in out
    assert "2 steps done" in out
    assert_same_save(reference, folder)


def test_no_save_writes_a_non_finite_tensor(tmp_path):
    good = {"w": torch.ones(3)}
    commit.commit_save(str(tmp_path), "latest", {"latest_net_G.pth": good}, keep_previous=True)
    bad = {"w": torch.tensor([1.0, float("nan"), 2.0]), "n": torch.tensor(3)}
    with pytest.raises(commit.SaveError, match=r"latest_net_G.pth: w is not finite"):
        commit.commit_save(str(tmp_path), "latest", {"latest_net_G.pth": bad}, keep_previous=True)
    assert_same(load(tmp_path / "latest_net_G.pth"), good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest_net_G.pth"]


# ---- the non-finite guard -----------------------------------------------------------------------------


def poison_from(step, names=("G_s",)):
    """For poison_training: the losses ``names`` are NaN in every step from ``step`` (1-based) on."""
    return lambda counters: names if counters["steps"] + 1 >= step else ()


def test_a_nan_loss_is_skipped_and_stops_the_run_with_latest_before_it(tiny, tmp_path, monkeypatch, capsys):
    three = tmp_path / "data3"  # 3 steps per epoch: the NaN steps 2 and 3 are inside epoch 1
    for i, split in enumerate(["trainA", "trainB"]):
        write_images(three / split, 3, seed=i)
    assert run(train_script, argv(three, tmp_path, "before", "--max_iters", "1"), monkeypatch) == 0
    poison_training(monkeypatch, train_script, poison_from(2))
    capsys.readouterr()
    code = run(train_script, argv(three, tmp_path, "nan", "--max_nonfinite_steps", "2"), monkeypatch)
    out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "step 3 (epoch 1, step 3 of the epoch): G_s not finite in 2 steps in a row" in err
    assert "--max_nonfinite_steps 2" in err and "latest" in err
    assert "step 2 (epoch 1, step 2 of the epoch): G_s not finite: step skipped (1 in a row" in out
    # 'latest' is the state after step 1, bit for bit as a run that stopped there saved it.
    assert_same_save(tmp_path / "before", tmp_path / "nan")
    assert not (tmp_path / "nan" / "1_net_G.pth").exists()


def test_a_short_burst_of_nan_is_skipped_and_training_goes_on(tiny, tmp_path, monkeypatch, capsys):
    poison_training(monkeypatch, train_script, lambda counters: ("D_real",) if counters["steps"] == 1 else ())
    assert run(train_script, argv(tiny, tmp_path, "burst"), monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.count("not finite: step skipped") == 1 and "D_real not finite" in out
    state = load(tmp_path / "burst" / "latest_train_state.pth")
    assert state["counters"]["steps"] == 4 and state["counters"]["nonfinite"] == 1
    assert all(torch.isfinite(v).all() for v in load(tmp_path / "burst" / "latest_net_G.pth").values())


def model_state(model):
    """Everything a step may change: weights and buffers, optimiser and GradScaler states, image pools."""
    return {
        "nets": {n: net.state_dict() for n, net in model.networks().items()},
        "optimizers": [o.state_dict() for o in model.optimizers],
        "scaler": model.scaler.state_dict(),
        "extra": model.extra_state(),
    }


def clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone(v) for v in obj)
    return obj


@pytest.mark.parametrize("name", sorted(model_classes(include_template=True)))
def test_a_non_finite_step_changes_nothing_in_every_model(name, tmp_path, monkeypatch):
    opt = TrainOptions(train_argv(name, tmp_path / "data", tmp_path)).parse()
    seed_everything(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(opt)
    model.setup()
    generator = torch.Generator().manual_seed(0)
    size = opt.crop_size

    def batch():
        return {key: torch.rand(1, 3, size, size, generator=generator) * 2 - 1 for key in ("A", "B")} | {
            "A_paths": ["a"]
        }

    poison = set()
    poison_losses(monkeypatch, lambda model: poison)

    def step(names=()):
        poison.clear()
        poison.update(names)
        model.set_input(batch())
        model.begin_step()
        model.optimize_parameters()
        return model.end_step()

    assert step() == []  # a finite step (the optimisers get their state; the pool fills)
    before = clone(model_state(model))
    nonfinite = step(model.loss_names)  # every loss NaN: the step's first loss already is
    assert nonfinite and set(nonfinite) <= set(model.loss_names)
    assert_same(model_state(model), before)
    assert step() == []  # the guard lets the next finite step through
    changed = model_state(model)
    assert any(
        not torch.equal(changed["nets"][n][k], v)
        for n in before["nets"]
        for k, v in before["nets"][n].items()
        if v.is_floating_point()
    )


# ---- one run per folder --------------------------------------------------------------------------------

HOLD = (
    "import sys, time; sys.path.insert(0, sys.argv[1]); from util.run_lock import RunLock; "
    "RunLock(sys.argv[2]).acquire(); print('ready', flush=True); time.sleep(120)"
)


def test_a_second_train_on_a_locked_folder_stops_and_a_stale_lock_is_taken_over(tiny, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ck" / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ROOT), str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert run(train_script, argv(tiny, tmp_path / "ck", "run", "--max_iters", "1"), monkeypatch) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {holder.pid} on host" in err and "another --name" in err
        assert not (folder / "latest_net_G.pth").exists()
    finally:
        holder.kill()  # kill -9: the lock file stays, the kernel's lock goes
        holder.wait()
    assert str(holder.pid) in (folder / "train.lock").read_text()
    assert run(train_script, argv(tiny, tmp_path / "ck", "run", "--max_iters", "1"), monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"taking over the lock of {folder} left by train.py pid {holder.pid}" in out
    assert (folder / "latest_net_G.pth").exists() and not (folder / "train.lock").exists()


def test_fp16_overflow_is_the_grad_scalers_and_is_not_counted(tmp_path, monkeypatch):
    """--amp fp16: an overflow of the scaled gradients is skipped by the GradScaler (its scale halves) and is
    not a non-finite step; a NaN loss is counted once and leaves the scale alone."""
    opt = TrainOptions(["--checkpoints_dir", str(tmp_path), "--name", "m", "--amp", "fp16"] + TINY).parse()
    seed_everything(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(opt)
    model.setup()
    batch = {
        key: torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(i)) * 2 - 1
        for i, key in enumerate(("A", "B"))
    }
    model.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**120)  # every scaled gradient overflows
    model.set_input(batch)
    model.begin_step()
    model.optimize_parameters()
    assert model.end_step() == [] and model.scaler.get_scale() == 2.0**119
    before = clone(model_state(model))
    poison_losses(monkeypatch, lambda model: ["D_real"])
    model.begin_step()
    model.optimize_parameters()
    assert model.end_step() == ["D_real"]
    assert_same(model_state(model), before)  # the scale included: the GradScaler did not see the step


def test_without_kernel_locks_the_lock_file_alone_decides(tmp_path, monkeypatch):
    """A file system without flock: a lock naming a live process of this host stops a second run, one naming a
    process that no longer exists is taken over."""
    import json
    import socket

    from util import run_lock
    from util.errors import UserError

    monkeypatch.setattr(run_lock, "_kernel_lock", lambda fd: None)
    folder = tmp_path / "run"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid, alive in ((os.getppid(), True), (dead.pid, False)):
        (folder / "train.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "since": "then"}))
        lock = run_lock.RunLock(str(folder))
        if alive:
            with pytest.raises(UserError, match=f"pid {pid} on host .*delete the lock file"):
                lock.acquire()
            assert str(pid) in (folder / "train.lock").read_text()
        else:
            assert f"left by train.py pid {pid}" in lock.acquire()
            assert json.loads((folder / "train.lock").read_text())["pid"] == os.getpid()
            lock.release()
            assert not (folder / "train.lock").exists()
