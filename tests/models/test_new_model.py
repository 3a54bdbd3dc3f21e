"""A new model file, with nothing else edited, passes the whole suite.

The template, copied into a temporary folder as ``newcomer_model.py`` (class renamed, nothing else changed)
and registered through ``SESIM_MODEL_PATH``, is a real model to every tool; the suite is collected and run
again in a child process, and every test parametrised over the models must take it and pass.
"""

import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT

NAME = "newcomer"


def pytest_in_child(tmp_path, *args):
    env = {**os.environ, "SESIM_MODEL_PATH": str(tmp_path / "models")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_a_model_file_alone_is_taken_by_every_model_parametrised_test(tmp_path):
    source = (ROOT / "models" / "template_model.py").read_text()
    assert "class TemplateModel(BaseModel)" in source
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / f"{NAME}_model.py").write_text(
        source.replace("class TemplateModel(BaseModel)", "class NewcomerModel(BaseModel)")
    )
    listed = pytest_in_child(tmp_path, "--collect-only", "-k", f"template or {NAME}")
    assert listed.returncode == 0, listed.stdout[-3000:]
    ids = [line for line in listed.stdout.splitlines() if "::" in line]

    def functions(model):  # the tests parametrised with ``model`` (any position of the ids)
        return {i.split("[")[0] for i in ids if re.search(rf"[\[-]{model}[\]-]", i)}

    taken, by_template = functions(NAME), functions("template")
    assert by_template and by_template <= taken, sorted(by_template - taken)
    # tests over the registered models (the template is not one), the conformance suite, the step guard,
    # the checkpoint layout, the entry points, export and the Hub folder
    for module in ("test_conformance", "test_never_lose_a_run", "test_inference_entry_points", "test_export_and_hub"):
        assert any(module in t for t in taken), module
    ran = pytest_in_child(tmp_path, "-k", NAME)
    summary = ran.stdout.strip().splitlines()[-1]
    assert ran.returncode == 0, ran.stdout[-4000:]
    assert re.search(rf"\b{len([i for i in ids if NAME in i])} passed", summary), summary
