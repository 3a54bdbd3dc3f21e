"""Losses stay on the device between prints: train.py logs what reading every step's losses logged.

The reference is the loop as it was before :class:`util.loss_meter.LossMeter`: step the model by
hand and read ``float(loss)`` of every part after every step.
"""

import re
import sys
from collections import OrderedDict

import pytest
import torch
from helpers import TINY, write_images

import train
from data import create_dataset
from models import create_model
from models.base_model import BaseModel
from options.train_options import TrainOptions
from util.seeding import seed_everything
from util.errors import run_cli
from util.loss_meter import LossMeter

LINE = re.compile(r"^\(epoch: (\d+), iters: (\d+), .*?\) (.*)$")


def random_parts(generator, names):
    return {name: torch.rand((), generator=generator) * 3 for name in names}


def test_meter_reports_the_latest_step_and_sums_g_losses_as_python_floats():
    names = ["G_GAN", "D_real", "G_s", "G_idt"]
    generator = torch.Generator().manual_seed(0)
    meter = LossMeter(names, torch.device("cpu"))
    python_sum = 0.0
    for _ in range(50):
        parts = random_parts(generator, ["D_real", "G_idt", "G_s", "G_GAN", "F_s"])  # another order, an extra key
        meter.update(parts)
        python_sum += sum(float(parts[n]) for n in names if n.startswith("G_"))
    assert meter.latest() == OrderedDict((n, float(parts[n])) for n in names)  # exact, in names' order
    assert meter.epoch_sum() == python_sum and isinstance(meter.epoch_sum(), float)
    meter.start_epoch()
    assert meter.epoch_sum() == 0.0 and meter.latest() == OrderedDict((n, float(parts[n])) for n in names)


def test_a_resumed_sum_ends_where_the_uninterrupted_one_does():
    names = ["G_GAN", "G_s"]
    steps = [random_parts(torch.Generator().manual_seed(i), names) for i in range(20)]
    whole = LossMeter(names, torch.device("cpu"))
    first = LossMeter(names, torch.device("cpu"))
    for parts in steps:
        whole.update(parts)
    for parts in steps[:7]:
        first.update(parts)
    resumed = LossMeter(names, torch.device("cpu"), epoch_sum=first.epoch_sum())  # the saved Python float
    for parts in steps[7:]:
        resumed.update(parts)
    assert resumed.epoch_sum() == whole.epoch_sum()


def test_meter_keeps_parts_of_missing_names_out():
    meter = LossMeter(["G_GAN", "D_fake"], torch.device("cpu"))
    assert meter.latest() == OrderedDict() and meter.epoch_sum() == 0.0
    meter.update({"D_fake": torch.tensor(0.25)})
    assert meter.latest() == OrderedDict(D_fake=0.25) and meter.epoch_sum() == 0.0


def reference_run(argv, epochs):
    """Seed, build and step the model as train.py does, reading every loss after every step."""
    opt = TrainOptions(argv).parse()
    seed_everything(opt.seed)
    dataset = create_dataset(opt)
    model = create_model(opt)
    model.setup()
    logged, metrics = [], []
    for epoch in range(1, epochs + 1):
        dataset.set_epoch(epoch)
        g_sum = 0.0
        for batch in dataset:
            model.set_input(batch)
            model.optimize_parameters()
            losses = {k: float(model.loss_parts[k]) for k in model.loss_names if k in model.loss_parts}
            logged.append(losses)
            g_sum += sum(v for k, v in losses.items() if k.startswith("G_"))
        metrics.append(g_sum / dataset.num_batches)
        model.update_learning_rate(metrics[-1])
    return logged, metrics


@pytest.mark.slow
def test_logged_losses_and_plateau_metric_equal_reading_every_step(tmp_path, monkeypatch):
    for i, split in enumerate(("trainA", "trainB")):
        write_images(tmp_path / "data" / split, 2, seed=i)
    argv = TINY + [
        "--dataroot",
        str(tmp_path / "data"),
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--name",
        "m",
        "--lr_policy",
        "plateau",
    ]
    monkeypatch.setattr(BaseModel, "get_current_losses", lambda self: pytest.fail("a per-step read"))
    metrics, update = [], BaseModel.update_learning_rate
    monkeypatch.setattr(
        BaseModel, "update_learning_rate", lambda self, metric=None: metrics.append(metric) or update(self, metric)
    )
    monkeypatch.setattr(sys, "argv", ["train.py"] + argv)
    run_cli(train.main)
    monkeypatch.undo()

    lines = [LINE.match(line) for line in (tmp_path / "ck" / "m" / "loss_log.txt").read_text().splitlines()]
    printed = [dict(pair.split(": ") for pair in re.findall(r"\w+: [-\d.na]+", m.group(3))) for m in lines if m]
    logged, expected_metrics = reference_run(argv, epochs=2)
    assert len(printed) == len(logged) == 4 and printed[0].keys() == {"G_GAN", "G_s", "D_real", "D_fake"}
    for got, want in zip(printed, logged):
        assert got == {k: f"{v:.3f}" for k, v in want.items()}
    assert metrics == expected_metrics  # the epoch's mean G loss, exactly
