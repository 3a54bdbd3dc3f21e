"""The options a model reads, read once in its constructor into frozen dataclasses: the step methods and
everything the tools call afterwards read these, never the options (tests/models/test_conformance.py checks it)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Optional, TypeVar

T = TypeVar("T")


def frozen_config(cls: type[T], opt: argparse.Namespace) -> T:
    """The frozen dataclass ``cls`` with each field read from the options ``opt``, once, in a model's
    constructor: the step methods read this, never ``opt``. A field whose flag ``opt`` lacks (a
    training-only flag at test time) is None."""
    return cls(**{f.name: getattr(opt, f.name, None) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class CommonConfig:
    """The options every model's shared parts read (BaseModel's ``common``); None where a test run lacks them."""

    seed: Optional[int]
    lr: Optional[float]
    beta1: Optional[float]
    beta2: Optional[float]
    lr_policy: Optional[str]
    n_epochs: Optional[int]
    n_epochs_decay: Optional[int]
    lr_decay_iters: Optional[int]
    lr_decay_gamma: Optional[float]
    epoch_count: Optional[int]
    verbose: Optional[bool]
    channels_last: Optional[bool]
    compile: Optional[bool]
