"""Multi-process training: two CPU processes (gloo) under torchrun, against one process with their batch.

One torchrun launch runs this file as its worker (``_worker``): each of 2 ranks trains 4 steps of
LSeSim (with identity and a small image pool, batch 1), resumes a copy from the step-2 checkpoint
to step 4, and trains one more run for a single step; after each run it dumps its own in-memory
weights, last gradients, image pool and the number of torch.save calls it made. The tests check
that the ranks agree bit for bit, that only rank 0 wrote, that the resumed run ends exactly where
the uninterrupted one did, and that one process with --batch_size 2 (the same global batch) gets
the same step: the same losses and gradients within the tolerances below.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import LSESIM, TINY, write_images

ROOT = Path(__file__).resolve().parents[2]
# The shared tiny LSeSim run with an identity term and a small pool; pictures at their default rate.
TRAIN = (
    TINY
    + ["--display_freq", "400", "--update_html_freq", "1000"]
    + LSESIM
    + ["--lambda_identity", "0.5", "--pool_size", "2"]
)
# Two half batches + an all-reduce sum the same terms as one batch in another order: float32
# rounding only. Measured: gradients differ by <= 5e-6 of each network's largest gradient, losses
# by <= 1e-6 relative. Both sides use one thread: with another thread count the convolutions round
# differently, and a similarity at the edge of the loss's top-quarter mask can switch sides, which
# moves a gradient by ~1e-3 (the mask is a step function). Weights after several Adam steps are no
# fair measure either: Adam scales every gradient to about +-lr, including those that are pure
# rounding noise (e.g. the biases in front of an InstanceNorm, whose true gradient is 0).
GRAD_TOLERANCE = 2e-5  # max |g_2proc - g_1proc| / max |g_1proc|, per network
LOSS_TOLERANCE = 1e-5  # relative


def snapshot(model) -> dict:
    """Weights, last gradients, pool and (all-rank averaged) losses of a trained model."""
    nets = model.networks()
    return {
        "nets": {n: {k: v.clone() for k, v in net.state_dict().items()} for n, net in nets.items()},
        "grads": {n: {k: p.grad.clone() for k, p in net.named_parameters()} for n, net in nets.items()},
        "pool": [image.clone() for image in model.fake_pool.images] if hasattr(model, "fake_pool") else [],
        "losses": dict(model.get_current_losses()),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train with torchrun (2 ranks, batch 1) and in this process (batch 2) on 4 + 4 images."""
    tmp = tmp_path_factory.mktemp("dist")
    for i, split in enumerate(["trainA", "trainB"]):
        write_images(tmp / "data" / split, 4, seed=i)  # 4 = 2 ranks x 2 steps: no padded samples
    common = ["--dataroot", str(tmp / "data"), "--checkpoints_dir", str(tmp / "ck")] + TRAIN
    four = common + ["--name", "ddp", "--max_iters", "4", "--save_latest_freq", "4", "--save_by_iter"]
    resume = common + ["--name", "ddp", "--max_iters", "4", "--continue_train", "--epoch", "iter_4"]
    one = common + ["--name", "one_step", "--max_iters", "1"]
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    )  # the worker imports helpers
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(Path(__file__)),
        str(tmp / "dumps"),
    ] + [" ".join(argv) for argv in (four, resume, one)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp / "ck" / "ddp" / "loss_log.txt").read_text()

    import train
    from util.errors import run_cli

    models, create_model, argv, threads = [], train.create_model, sys.argv, torch.get_num_threads()
    train.create_model = lambda opt: models.append(create_model(opt)) or models[-1]
    sys.argv = ["train.py"] + common + ["--name", "single", "--max_iters", "1", "--batch_size", "2"]
    torch.set_num_threads(1)  # as the workers: see GRAD_TOLERANCE
    try:
        run_cli(train.main)
    finally:
        train.create_model, sys.argv = create_model, argv
        torch.set_num_threads(threads)
    load = lambda path: torch.load(path, weights_only=True)  # noqa: E731
    return {
        "dumps": {(run, rank): load(tmp / "dumps" / f"run{run}_rank{rank}.pth") for run in range(3) for rank in (0, 1)},
        "ck": tmp / "ck",
        "log": log,
        "stdout": done.stdout,
        "single": snapshot(models[0]),
    }


@pytest.mark.slow
def test_ranks_hold_identical_weights_and_rank0_saved_them(runs):
    for run in range(3):
        rank0, rank1 = runs["dumps"][run, 0], runs["dumps"][run, 1]
        for key in ("nets", "grads"):
            assert set(rank0[key]) == set("GDF")
            for net in "GDF":
                assert all(torch.equal(rank0[key][net][k], rank1[key][net][k]) for k in rank0[key][net]), (run, net)
        assert len(rank0["pool"]) == 2 and all(torch.equal(a, b) for a, b in zip(rank0["pool"], rank1["pool"]))
    final = runs["dumps"][1, 0]["nets"]  # the resumed run wrote iter_8 last
    for net in "GDF":
        saved = torch.load(runs["ck"] / "ddp" / f"iter_8_net_{net}.pth", weights_only=True)
        assert saved.keys() == final[net].keys() and all(torch.equal(saved[k], final[net][k]) for k in saved)


@pytest.mark.slow
def test_only_rank0_writes(runs):
    assert all(runs["dumps"][run, 1]["saves"] == 0 for run in range(3))
    # 'latest' at step 2, at the epoch's end and at step 4 (--save_latest_freq; --max_iters does not save
    # it again at the same step), 'iter_4' and 'iter_8': 5 x (G, D, F, state).
    assert runs["dumps"][0, 0]["saves"] == 20
    # Rank 0 logs: one header per run and one line per step (4 + 2).
    assert runs["log"].count("Training Loss") == 2
    assert len([line for line in runs["log"].splitlines() if line.startswith("(epoch")]) == 6
    assert runs["stdout"].count("reached --max_iters") == 3


@pytest.mark.slow
def test_logged_losses_are_the_latest_step_averaged_over_ranks(runs):
    # The one-step run prints once: its line must show get_current_losses() (the per-step read and
    # all-reduce of the old loop), although the loop now reads the losses on the device only there.
    line = [ln for ln in (runs["ck"] / "one_step" / "loss_log.txt").read_text().splitlines() if ln.startswith("(")]
    averaged = runs["dumps"][2, 0]["losses"]
    assert len(line) == 1 and line[0].split(") ", 1)[1] == " ".join(f"{k}: {v:.3f}" for k, v in averaged.items())


@pytest.mark.slow
def test_checkpoints_are_plain_state_dicts(runs):
    from models import create_model
    from options.train_options import TrainOptions

    opt = TrainOptions(TRAIN + ["--checkpoints_dir", str(runs["ck"]), "--name", "ddp"]).parse()
    model = create_model(opt)
    for net, module in model.networks().items():
        state = torch.load(runs["ck"] / "ddp" / f"latest_net_{net}.pth", weights_only=True)
        assert list(state) == list(module.state_dict())  # no "module." / "_orig_mod." prefixes
    model.load_networks("latest")


@pytest.mark.slow
def test_resume_under_torchrun_ends_where_the_uninterrupted_run_ended(runs):
    whole, resumed = runs["dumps"][0, 0], runs["dumps"][1, 0]
    for key in ("nets", "grads"):
        for net in "GDF":
            assert all(torch.equal(whole[key][net][k], resumed[key][net][k]) for k in whole[key][net]), net
    assert all(torch.equal(a, b) for a, b in zip(whole["pool"], resumed["pool"]))


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    two, one = runs["dumps"][2, 0], runs["single"]
    assert two["losses"].keys() == one["losses"].keys()
    for name, value in one["losses"].items():
        assert abs(two["losses"][name] - value) <= LOSS_TOLERANCE * max(abs(value), 1e-3), name
    for net in "GDF":
        scale = max(g.abs().max().item() for g in one["grads"][net].values())
        worst = max((two["grads"][net][k] - g).abs().max().item() for k, g in one["grads"][net].items())
        assert scale > 0 and worst <= GRAD_TOLERANCE * scale, (net, worst / scale)
    # The pool saw both processes' fakes, in rank order, like the single process's batch.
    assert len(one["pool"]) == len(two["pool"]) == 2
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(one["pool"], two["pool"]))


def test_device_choice_and_the_torchrun_notice(monkeypatch, capsys):
    from options.train_options import TrainOptions
    from util.dist import device_for

    assert device_for([]) == torch.device("cpu")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert device_for([2, 3]) == torch.device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    TrainOptions(["--gpu_ids", "0,1"]).parse()
    assert "torchrun --nproc_per_node=2 train.py" in capsys.readouterr().out
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device_for([2, 3]) == torch.device("cuda:3")  # one id per process on this node
    assert device_for([0]) == torch.device("cuda:1")  # otherwise cuda:LOCAL_RANK
    TrainOptions(["--gpu_ids", "0,1"]).parse()
    assert "torchrun" not in capsys.readouterr().out


def _worker(dump_dir: str, *runs: str) -> None:
    """Under torchrun: ``train.main()`` once per argument string, then dump this rank's :func:`snapshot`."""
    sys.path.insert(0, str(ROOT))
    import train

    real_save, real_create_model, real_cleanup = torch.save, train.create_model, train.dist.cleanup
    saves, models = [], []

    def counting_save(obj, f, *args, **kwargs):
        saves.append(f)
        return real_save(obj, f, *args, **kwargs)

    def keeping_create_model(opt):
        models.append(real_create_model(opt))
        return models[-1]

    torch.save, train.create_model = counting_save, keeping_create_model
    train.dist.cleanup = lambda: None  # one process group for all runs
    os.makedirs(dump_dir, exist_ok=True)
    for index, argv in enumerate(runs):
        saves.clear()
        sys.argv = ["train.py"] + argv.split(" ")
        train.main()
        real_save(
            dict(snapshot(models[-1]), saves=len(saves)),
            os.path.join(dump_dir, f"run{index}_rank{os.environ['RANK']}.pth"),
        )
    real_cleanup()


if __name__ == "__main__":
    _worker(*sys.argv[1:])
