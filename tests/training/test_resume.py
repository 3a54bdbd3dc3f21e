"""The epoch schedule and --continue_train as CycleGAN users know them, and the resume option checks."""

import re

import pytest
import torch

import train as train_script
from helpers import TINY, run_script as run
from models import create_model
from models.schedulers import get_scheduler
from options.train_options import TrainOptions
from util.checkpoint import changed_options

LR = 1e-4


TINY_IMAGES = 3  # the shared tiny data set (conftest.py) with 3 steps per epoch at batch 1


def argv(tiny, tmp_path, name, *extra):
    """TINY without per-step pictures (the page and loss plot cost more than these steps)."""
    quiet = ["--display_freq", "1000", "--update_html_freq", "1000", "--no_html"]
    return ["--dataroot", tiny, "--name", name, "--checkpoints_dir", tmp_path / "ck"] + TINY + quiet + list(extra)


def epoch_ends(out):
    """(epoch, last epoch, learning rate) of every 'end of epoch' line."""
    return [
        (int(e), int(last), float(lr))
        for e, last, lr in re.findall(r"end of epoch (\d+)/(\d+): .* learning rate (-?[\d.]+)", out)
    ]


def linear(epoch, n_epochs, n_epochs_decay):
    """CycleGAN's linear rule for the rate of epoch ``epoch``, written out by hand."""
    if epoch <= n_epochs:
        return LR
    return LR * (1 - (epoch - n_epochs) / (n_epochs_decay + 1))


def weights(tmp_path, name, tag="latest"):
    return torch.load(tmp_path / "ck" / name / f"{tag}_net_G.pth", weights_only=True)


# ---- --epoch_count and the schedule --------------------------------------------------------------


def test_a_new_run_trains_epochs_epoch_count_to_n_epochs_plus_decay(tiny, tmp_path, monkeypatch, capsys):
    options = argv(tiny, tmp_path, "count", "--n_epochs", "2", "--n_epochs_decay", "2", "--epoch_count", "3")
    assert run(train_script, options, monkeypatch) == 0
    ends = epoch_ends(capsys.readouterr().out)
    # Epochs 3 and 4 only; the rate printed at an epoch's end is the next epoch's.
    assert [(e, last) for e, last, _ in ends] == [(3, 4), (4, 4)]
    assert [lr for _, _, lr in ends] == pytest.approx([linear(4, 2, 2), linear(5, 2, 2)], abs=1e-7)


def test_published_resume_with_epoch_count_ends_at_the_last_epoch(tiny, tmp_path, monkeypatch, capsys):
    schedule = ["--n_epochs", "1", "--n_epochs_decay", "2"]
    assert run(train_script, argv(tiny, tmp_path, "pub", *schedule, "--max_iters", "3"), monkeypatch) == 0
    capsys.readouterr()
    # How published runs are resumed: --continue_train --epoch_count <next epoch>.
    assert (
        run(train_script, argv(tiny, tmp_path, "pub", *schedule, "--continue_train", "--epoch_count", "2"), monkeypatch)
        == 0
    )
    out = capsys.readouterr().out
    ends = epoch_ends(out)
    assert [(e, last) for e, last, _ in ends] == [(2, 3), (3, 3)]
    assert [lr for _, _, lr in ends] == pytest.approx([linear(3, 1, 2), linear(4, 1, 2)], abs=1e-7)
    assert all(lr >= 0 for _, _, lr in ends)
    assert "--epoch_count 2: starting epoch 2 from its first step" in out


def test_extending_a_finished_run_follows_the_new_schedule(tiny, tmp_path, monkeypatch, capsys):
    assert run(train_script, argv(tiny, tmp_path, "ext", "--n_epochs", "1", "--n_epochs_decay", "0"), monkeypatch) == 0
    before = weights(tmp_path, "ext")
    capsys.readouterr()
    assert (
        run(
            train_script,
            argv(tiny, tmp_path, "ext", "--n_epochs", "1", "--n_epochs_decay", "0", "--continue_train"),
            monkeypatch,
        )
        == 0
    )
    assert "nothing to train: epoch 1" in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in weights(tmp_path, "ext").items())
    # Train longer: two epochs at the full rate; the second must run at 1e-4, not at the old schedule's 0.
    assert (
        run(
            train_script,
            argv(tiny, tmp_path, "ext", "--n_epochs", "2", "--n_epochs_decay", "0", "--continue_train"),
            monkeypatch,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("learning rate 0.0001000 now") == 1 and "epochs 2-2" in out
    assert epoch_ends(out) == [(2, 2, 0.0)]
    after = weights(tmp_path, "ext")
    assert any(not torch.equal(before[k], v) for k, v in after.items()), "G did not learn in the added epoch"


def test_epoch_count_outside_the_schedule_is_one_line(tiny, tmp_path, monkeypatch, capsys):
    assert run(train_script, argv(tiny, tmp_path, "bad", "--epoch_count", "3"), monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--epoch_count 3" in err and "1 to 2" in err


@pytest.mark.parametrize("policy", ["linear", "step", "cosine", "plateau"])
def test_no_flag_combination_gives_a_negative_learning_rate(policy):
    net = torch.nn.Linear(1, 1)
    for n_epochs in (0, 1, 3):
        for n_epochs_decay in (0, 1, 4):
            for epoch_count in (1, 2, 5, 9):
                optimizer = torch.optim.Adam(net.parameters(), lr=LR)
                scheduler = get_scheduler(
                    optimizer,
                    policy=policy,
                    n_epochs=n_epochs,
                    n_epochs_decay=n_epochs_decay,
                    epoch_count=epoch_count,
                    lr_decay_iters=1,
                )
                rates = [optimizer.param_groups[0]["lr"]]
                for _ in range(12):  # far past n_epochs + n_epochs_decay
                    optimizer.step()
                    scheduler.step(1.0) if policy == "plateau" else scheduler.step()
                    rates.append(optimizer.param_groups[0]["lr"])
                assert min(rates) >= 0, (n_epochs, n_epochs_decay, epoch_count, rates)
                if policy == "linear":
                    expected = [max(0.0, linear(epoch_count + k, n_epochs, n_epochs_decay)) for k in range(13)]
                    assert rates == pytest.approx(expected, abs=1e-12)


def test_a_rebuilt_schedule_gives_the_same_rates_as_an_unbroken_one():
    net = torch.nn.Linear(1, 1)
    for policy in ("linear", "step", "cosine"):
        kwargs = dict(policy=policy, n_epochs=3, n_epochs_decay=4, lr_decay_iters=2)
        optimizer = torch.optim.Adam(net.parameters(), lr=LR)
        scheduler = get_scheduler(optimizer, epoch_count=1, **kwargs)
        unbroken = []
        for _ in range(7):
            unbroken.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        for epoch in range(1, 8):  # rebuilt at each epoch, as a resume does
            fresh = torch.optim.Adam(net.parameters(), lr=LR)
            get_scheduler(fresh, epoch_count=epoch, **kwargs)
            assert fresh.param_groups[0]["lr"] == unbroken[epoch - 1], (policy, epoch)


def test_resume_from_weights_alone_starts_after_that_epoch(tiny, tmp_path, monkeypatch, capsys):
    schedule = ["--n_epochs", "2", "--n_epochs_decay", "0", "--save_epoch_freq", "1"]
    assert run(train_script, argv(tiny, tmp_path, "w", *schedule, "--max_iters", "3"), monkeypatch) == 0
    run_dir = tmp_path / "ck" / "w"
    # An epoch checkpoint written at the end of epoch 1 would be 1_net_*; a published run has only those.
    for net in ("G", "D"):
        (run_dir / f"latest_net_{net}.pth").rename(run_dir / f"1_net_{net}.pth")
    (run_dir / "latest_train_state.pth").unlink()
    capsys.readouterr()
    assert run(train_script, argv(tiny, tmp_path, "w", *schedule, "--continue_train", "--epoch", "1"), monkeypatch) == 0
    out = capsys.readouterr().out
    assert "no training state for '1': loaded its weights only" in out
    assert [e for e, _, _ in epoch_ends(out)] == [2]


# ---- option checks on resume ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_run(tiny, tmp_path_factory):
    """A run stopped after 2 steps of epoch 1 (of 2)."""
    tmp_path = tmp_path_factory.mktemp("saved")
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert run(train_script, argv(tiny, tmp_path, "run", "--max_iters", "2"), monkeypatch) == 0
    return tmp_path


@pytest.mark.parametrize(
    "change, needle",
    [
        (["--netG", "resnet_6blocks"], "--netG resnet_9blocks -> resnet_6blocks"),
        (["--lambda_spatial", "5"], "--lambda_spatial 10.0 -> 5.0"),
        (["--batch_size", "2"], "--batch_size 1 -> 2"),
        (["--crop_size", "28"], "--crop_size 32 -> 28"),
        (["--learned_attn"], "--learned_attn False -> True"),
        (["--seed", "3"], "--seed 0 -> 3"),
    ],
)
def test_a_change_that_alters_the_run_stops_the_resume(saved_run, tiny, monkeypatch, capsys, change, needle):
    opt_txt = (saved_run / "ck" / "run" / "train_opt.txt").read_text()
    assert run(train_script, argv(tiny, saved_run, "run", "--continue_train", *change), monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "--allow_option_change" in err
    assert (saved_run / "ck" / "run" / "train_opt.txt").read_text() == opt_txt  # the refused options not saved


def test_frequencies_may_change_and_allow_option_change_overrides(saved_run, tiny, monkeypatch, capsys):
    free = [
        "--print_freq",
        "2",
        "--display_freq",
        "3",
        "--save_latest_freq",
        "7",
        "--update_html_freq",
        "5",
        "--save_epoch_freq",
        "2",
        "--num_threads",
        "0",
        "--max_iters",
        "3",
    ]
    assert run(train_script, argv(tiny, saved_run, "run", "--continue_train", *free), monkeypatch) == 0
    capsys.readouterr()
    assert (
        run(
            train_script,
            argv(
                tiny,
                saved_run,
                "run",
                "--continue_train",
                "--lambda_spatial",
                "5",
                "--allow_option_change",
                "--max_iters",
                "4",
            ),
            monkeypatch,
        )
        == 0
    )
    assert "--allow_option_change: resuming with --lambda_spatial 10.0 -> 5.0" in capsys.readouterr().out


def test_a_new_learning_rate_applies_when_allowed(saved_run, tiny, tmp_path):
    opt = TrainOptions(
        [str(a) for a in argv(tiny, saved_run, "run", "--continue_train", "--lr", "0.0004", "--allow_option_change")]
    ).parse()
    model = create_model(opt)
    model.setup()
    state = torch.load(saved_run / "ck" / "run" / "latest_train_state.pth", weights_only=True)
    model.load_training_state(state["model"], first_epoch=2, saved_opt=state["opt"])
    # epoch 2 of 1 + 1: the linear rule gives 1 - 1/2 of the new base rate
    assert [o.param_groups[0]["lr"] for o in model.optimizers] == pytest.approx([4e-4 * 0.5] * 2, rel=1e-12)


def test_the_number_of_processes_is_checked():
    saved = {"netG": "resnet_9blocks", "print_freq": 1}
    assert changed_options(saved, {"netG": "resnet_9blocks", "print_freq": 5}, 1, 1) == []
    assert changed_options(saved, dict(saved), 2, 1) == ["number of processes 2 -> 1"]
    assert changed_options(saved, {"netG": "x", "print_freq": 1, "new_flag": 3}, 1, 1) == ["--netG resnet_9blocks -> x"]
