"""Models, found by name: ``--model sc`` -> ``models/sc_model.py`` -> ``SCModel(BaseModel)``.

Adding a model means adding one file ``models/<name>_model.py`` with a ``BaseModel`` subclass whose
lowercased class name is ``<name>model`` (underscores dropped); nothing else changes: the tools read
what they need from the class's declarations, and tests/models/test_conformance.py covers it (see
docs/adding_a_model.md). A model file may also live outside the repository, in a folder named by the
environment variable ``SESIM_MODEL_PATH`` (folders separated by ``os.pathsep``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

from util.errors import UserError


MODEL_PATH = "SESIM_MODEL_PATH"  # the environment variable naming folders of model files outside models/


def _outside_files() -> dict[str, Path]:
    """name -> ``<folder>/<name>_model.py`` for the folders of ``$SESIM_MODEL_PATH`` (the first folder wins)."""
    files: dict[str, Path] = {}
    for folder in filter(None, os.environ.get(MODEL_PATH, "").split(os.pathsep)):
        for path in sorted(Path(folder).glob("*_model.py")):
            files.setdefault(path.name[: -len("_model.py")], path)
    return files


def available_models() -> list[str]:
    """Names of every ``models/<name>_model.py`` except the template, and of the model files in the folders
    of ``$SESIM_MODEL_PATH``."""
    here = Path(__file__).resolve().parent
    names = {p.name[: -len("_model.py")] for p in here.glob("*_model.py")} | set(_outside_files())
    return sorted(n for n in names if n not in ("base", "template"))


def _model_module(model_name: str) -> ModuleType:
    """``models.<name>_model``, or the file of that name in a ``$SESIM_MODEL_PATH`` folder (models/ wins)."""
    if (Path(__file__).resolve().parent / f"{model_name}_model.py").is_file():
        return importlib.import_module(f"models.{model_name}_model")
    module_name = f"sesim_models.{model_name}_model"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, _outside_files()[model_name])
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name]


def find_model_using_name(model_name: str) -> type:
    """The BaseModel subclass defined in ``models/<model_name>_model.py``."""
    from models.base_model import BaseModel

    known = available_models() + ["template"]
    if model_name not in known:
        raise UserError(f"--model: unknown model '{model_name}'; choose from {', '.join(available_models())}")
    module = _model_module(model_name)
    target = model_name.replace("_", "") + "model"
    for name, cls in vars(module).items():
        if name.lower() == target and isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls
    raise ValueError(f"{module.__file__} defines no BaseModel subclass named like {target}")


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
