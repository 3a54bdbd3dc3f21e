"""Models, found by name: ``--model sc`` -> ``models/sc_model.py`` -> ``SCModel(BaseModel)``.

Adding a model means adding one file ``models/<name>_model.py`` with a ``BaseModel`` subclass whose
lowercased class name is ``<name>model`` (underscores dropped); nothing else changes: the tools read
what they need from the class's declarations, and tests/test_conformance.py covers it (see
docs/adding_a_model.md).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Callable

from util.errors import UserError


def available_models() -> list[str]:
    """Names of every ``models/<name>_model.py`` except the template."""
    here = Path(__file__).resolve().parent
    names = [p.name[: -len("_model.py")] for p in here.glob("*_model.py")]
    return sorted(n for n in names if n not in ("base", "template"))


def find_model_using_name(model_name: str) -> type:
    """The BaseModel subclass defined in ``models/<model_name>_model.py``."""
    from models.base_model import BaseModel

    known = available_models() + ["template"]
    if model_name not in known:
        raise UserError(f"--model: unknown model '{model_name}'; choose from {', '.join(available_models())}")
    module = importlib.import_module(f"models.{model_name}_model")
    target = model_name.replace("_", "") + "model"
    for name, cls in vars(module).items():
        if name.lower() == target and isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls
    raise ValueError(f"models/{model_name}_model.py defines no BaseModel subclass named like {target}")


def model_classes(include_template: bool = False) -> dict[str, type]:
    """name -> model class for every registered model (every ``models/<name>_model.py``), sorted by name;
    with ``include_template`` the template too. The tools and the conformance tests read the classes'
    declarations (``architecture_options``, ``test_networks``, ``output_names`` ...) from here."""
    names = available_models() + (["template"] if include_template else [])
    return {name: find_model_using_name(name) for name in sorted(names)}


def get_option_setter(model_name: str) -> Callable:
    """The model class's ``modify_commandline_options(parser, is_train)``."""
    return find_model_using_name(model_name).modify_commandline_options


def batch_extras(opt: "argparse.Namespace") -> dict:
    """What every batch of the data carries besides its samples for ``--model``: its class's ``batch_extras``
    (mmsc: the ``--style_image`` references); give it to ``data.create_dataset(..., extras=)``."""
    return find_model_using_name(opt.model).batch_extras(opt)


def create_model(opt: "argparse.Namespace") -> "BaseModel":  # noqa: F821 - imported lazily
    """Instantiate the model named by ``opt.model``."""
    return find_model_using_name(opt.model)(opt)
