"""What a model means to the tools is declared on its class, and the tools read the declarations.

``architecture_options`` (what a test run inherits from the trained run's opt.json), ``test_networks``
(what a test checkpoint holds) and ``output_names`` (single and multi-output): changing a declaration
changes what TestOptions, test_fid.py and scripts/score_multi.py do, with no edit outside the class.
"""

import argparse
import json

import pytest

import models
import test_fid
from helpers import load_script
from models.mmsc_model import MMSCModel
from models.sc_model import SCModel
from options.test_options import TestOptions


def write_run(ck, name, **options):
    folder = ck / name
    folder.mkdir(parents=True)
    (folder / "opt.json").write_text(json.dumps(options))


def parse_test_options(ck, name, *extra):
    return TestOptions(["--name", name, "--checkpoints_dir", str(ck), "--gpu_ids", "-1", *extra]).parse()


def test_a_test_run_inherits_the_declared_architecture_options(tmp_path, monkeypatch):
    write_run(tmp_path, "run", model="sc", ngf=16, ndf=32, netG="resnet_6blocks", direction="BtoA")
    opt = parse_test_options(tmp_path, "run")
    assert (opt.model, opt.ngf, opt.netG, opt.direction) == ("sc", 16, "resnet_6blocks", "BtoA")
    assert opt.ndf == 64 and opt.trained_direction == "BtoA"  # ndf is not declared: the default
    assert parse_test_options(tmp_path, "run", "--ngf", "8").ngf == 8  # the command line wins
    monkeypatch.setattr(SCModel, "architecture_options", SCModel.architecture_options + ("ndf",))
    assert parse_test_options(tmp_path, "run").ndf == 32


def test_the_model_on_the_command_line_chooses_whose_declaration_counts(tmp_path):
    write_run(tmp_path, "run", model="mmsc", ngf=16, style_dim=4, n_res=1)
    opt = parse_test_options(tmp_path, "run")
    assert (opt.model, opt.style_dim, opt.n_res) == ("mmsc", 4, 1)
    assert opt.trained_direction == "AtoB"  # a run without a saved direction: the given one


def test_every_registered_model_declares_a_usable_contract():
    classes = models.model_classes(include_template=True)
    assert set(classes) == set(models.available_models()) | {"template"}
    for name, cls in classes.items():
        assert cls.test_networks and all(isinstance(n, str) for n in cls.test_networks), name
        assert {"netG", "ngf", "input_nc", "output_nc", "direction"} <= set(cls.architecture_options), name
    assert MMSCModel.multi_output and not SCModel.multi_output


def test_output_names_single_and_multi():
    assert SCModel.output_names(None) == ["fake_B"]
    opt = type("Opt", (), {"style_image": None, "n_styles": 3})()
    assert MMSCModel.output_names(opt) == ["fake_B_1", "fake_B_2", "fake_B_3"]
    opt.style_image = ["a.png", "b.png"]
    assert MMSCModel.output_names(opt) == ["fake_B_1", "fake_B_2"]
    assert [MMSCModel.output_number(n) for n in ("fake_B_2", "fake_B_12", "fake_B", "fake_B_x", "real_A")] == [
        2,
        12,
        None,
        None,
        None,
    ]


def test_test_fid_and_score_multi_read_the_declarations(tmp_path, monkeypatch):
    images = tmp_path / "images"
    for folder in ("real_A", "out_2", "out_1", "out_10", "fake_B_1"):
        (images / folder).mkdir(parents=True)
    score_multi = load_script("scripts/score_multi.py")
    with pytest.raises(Exception, match="fake_B_<k>"):
        score_multi.output_folders(str(images))  # only one fake_B_<k>
    monkeypatch.setattr(MMSCModel, "output_visual", "out")
    assert score_multi.output_folders(str(images)) == ["out_1", "out_2", "out_10"]
    assert test_fid.output_count(argparse.Namespace(model="mmsc", style_image=None, n_styles=2)) == 2
    assert test_fid.output_count(argparse.Namespace(model="mmsc", style_image=["a", "b", "c"], n_styles=2)) == 3
    assert test_fid.output_count(argparse.Namespace(model="sc")) is None
