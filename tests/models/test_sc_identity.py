"""sc's identity term: --lambda_identity on real_B, and --identity_scale, the same pass on real_B resized."""

import numpy as np
import pytest
import torch
from PIL import Image

import train as train_script
from data import create_dataset
from helpers import TINY, build_training_model, run_script


def build(tiny, ck, extra):
    return build_training_model(
        ["--dataroot", tiny, "--name", "idt", "--checkpoints_dir", ck, "--model", "sc"] + TINY + extra
    )


def g_terms(model, batch):
    torch.manual_seed(7)
    model.set_input(batch)
    with torch.no_grad():
        model.forward()
        model._extract_features()
        return model.compute_G_loss()[1]


def test_identity_scale_translates_real_b_resized_and_compares_with_it(tiny, tmp_path):
    """--identity_scale 0.5 on 32x32 crops: idt_B is G of real_B at 16x16 (the resize checked against PIL's
    bilinear filter on float images, which widens with the reduction as an antialiased resize does), and the
    term is 3 * L1 of G(that image) against it."""
    opt, model = build(tiny, tmp_path, ["--lambda_identity", "3", "--identity_scale", "0.5"])
    batch = next(iter(create_dataset(opt)))
    terms = g_terms(model, batch)
    assert model.idt_B.shape[2:] == (16, 16)
    # an independent resize: PIL's bilinear (a triangle filter over the whole footprint), channel by channel
    real = model.real_B[0].numpy()
    small = np.stack(
        [
            np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((16, 16), Image.Resampling.BILINEAR))
            for c in real
        ]
    )
    source = model.identity_source()
    assert np.abs(source[0].numpy() - small).max() < 1e-4
    with torch.no_grad():
        expected = 3 * (model.netG(source) - source).abs().mean()
    assert float(terms["idt_B"]) == pytest.approx(float(expected), rel=1e-5)
    _, full = build(tiny, tmp_path, ["--lambda_identity", "3"])
    g_terms(full, batch)
    assert full.idt_B.shape[2:] == (32, 32)


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--identity_scale", "0"], "--identity_scale 0.0: must be in (0, 1]"),
        (["--identity_scale", "0.5", "--lambda_spatial_idt", "1"], "resizes the identity pass of --lambda_identity"),
    ],
)
def test_bad_identity_scale_is_one_line(extra, needle, tiny, tmp_path, monkeypatch, capsys):
    argv = ["--dataroot", tiny, "--name", "bad", "--checkpoints_dir", tmp_path, "--model", "sc"] + TINY + extra
    assert run_script(train_script, argv, monkeypatch) != 0
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
