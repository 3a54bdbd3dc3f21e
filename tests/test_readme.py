"""The README stays true: its drop-in example runs, the files its commands name exist."""

import re
import warnings
from pathlib import Path

import torch

from models.sesim import TORCHVISION_FILE, VGG16Features

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_drop_in_example_runs(tmp_path, monkeypatch):
    section = README.split("## The loss in your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    # 'imagenet' resolves through the torch hub cache: put a torchvision-format file there (random
    # values: the example only has to run as written, offline).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = VGG16Features(layers=(12,), weights="random")
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in vgg.features.state_dict().items()},
               hub / "checkpoints" / TORCHVISION_FILE)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(compile(code, "README example", "exec"), scope)
    assert torch.isfinite(scope["loss"]) and scope["loss"].item() > 0
    assert all(p.grad is not None for p in scope["generator"].parameters())


def test_files_named_by_commands_exist():
    named = set(re.findall(r"(?:bash|python) ((?:scripts|datasets)/[\w./]+\.(?:sh|py))", README))
    assert {"scripts/train_sc.sh", "scripts/test_sc.sh", "scripts/download_vgg16.py"} <= named
    for path in named | {"train.py", "test.py", "Makefile", ".ci/run", "models/template_model.py"}:
        assert (ROOT / path).is_file(), path
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in README and "make demo" in README
