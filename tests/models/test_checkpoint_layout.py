"""One layout for every model's extra training state, and the layouts saved before it still load."""

import warnings

import pytest
import torch

from helpers import DATA, train_argv, write_unaligned
from models import create_model, model_classes
from options.train_options import TrainOptions
from util.image_pool import ImagePool

OLD = DATA / "old_layout" / "extra_states.pth"
# What each old layout's keys were the state of (the attribute names the models hold their pools in).
OLD_KEYS = {"pool": "fake_pool", "pool_A": "fake_A_pool", "pool_B": "fake_B_pool"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_unaligned(tmp_path_factory.mktemp("layout") / "data", 1)


def build(name, root, ck):
    opt = TrainOptions(train_argv(name, root, ck)).parse()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG
        return create_model(opt)


def pools_of(model):
    return {name: value for name, value in vars(model).items() if isinstance(value, ImagePool)}


@pytest.mark.parametrize("name", sorted(model_classes(include_template=True)))
def test_every_model_saves_its_pools_in_one_layout(name, root, tmp_path):
    model = build(name, root, tmp_path)
    generator = torch.Generator().manual_seed(0)
    for pool in pools_of(model).values():
        pool.query(torch.rand(2, 3, 32, 32, generator=generator))
    extra = model.extra_state()
    assert set(extra) <= {"pools"}
    assert set(extra.get("pools", {})) == set(pools_of(model))
    again = build(name, root, tmp_path)
    again.load_extra_state(extra)
    for attribute, pool in pools_of(again).items():
        saved = extra["pools"][attribute]
        assert len(pool.images) == len(saved["images"]) == 2
        assert all(torch.equal(a, b) for a, b in zip(pool.images, saved["images"]))
        assert torch.equal(pool.generator.get_state(), saved["generator_state"])


@pytest.mark.parametrize("name", ["sc", "cut", "cycle_gan"])
def test_an_old_layout_loads(name, root, tmp_path):
    old = torch.load(OLD, weights_only=True)[name]
    model = build(name, root, tmp_path)
    model.load_extra_state(old)
    pools = pools_of(model)
    assert {OLD_KEYS[key] for key in old} == set(pools)
    for key, saved in old.items():
        pool = pools[OLD_KEYS[key]]
        assert len(saved["images"]) == 2 and len(pool.images) == 2
        assert all(torch.equal(a, b) for a, b in zip(pool.images, saved["images"]))
        assert torch.equal(pool.generator.get_state(), saved["generator_state"])
    # saved again, it is in today's layout, with the same content
    extra = model.extra_state()
    assert set(extra) == {"pools"}
    for key, saved in old.items():
        assert all(torch.equal(a, b) for a, b in zip(extra["pools"][OLD_KEYS[key]]["images"], saved["images"]))
