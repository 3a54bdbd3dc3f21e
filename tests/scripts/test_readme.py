"""The README and the docs stay true: the drop-in example runs, the files their commands name exist,
their relative links (and #anchors) resolve, and every ``python train.py / test.py / test_fid.py``
command in a code block parses with the real option parsers (unknown flags and invalid values fail)."""

import re
import argparse
import importlib
import shlex
import warnings
from pathlib import Path

import pytest
import torch

from helpers import ROOT, load_script
from models.sesim import TORCHVISION_FILE, VGG16Features
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError

README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Entry points whose commands are parsed with the script's own parse_args(argv).
PARSE_ARGS_SCRIPTS = {"translate.py", "export.py", "app.py", "scripts/push_to_hub.py"}
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "2>&1", "&"}


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[\w-]*\n(.*?)^```", text, re.S | re.M)


def strip_comment(line: str) -> str:
    """The line without a shell comment (a '#' at a word's start, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def command_lines(text: str) -> list[str]:
    """Every line of every code block, continuation lines (ending in a backslash) joined, comments removed."""
    lines = []
    for block in code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [strip_comment(line).strip() for line in joined.splitlines()]
    return [line for line in lines if line]


def python_commands(text: str) -> list[tuple[str, list[str]]]:
    """(script, arguments) of every ``python <script>.py ...`` and ``torchrun ... <script>.py ...``."""
    commands = []
    for line in command_lines(text):
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        for start, token in enumerate(tokens):
            if token in ("python", "python3", "torchrun"):
                rest = tokens[start + 1 :]
                at = next((i for i, t in enumerate(rest) if t.endswith(".py")), None)
                if at is None or (token != "torchrun" and at != 0):
                    continue
                args = []
                for arg in rest[at + 1 :]:
                    if arg in SHELL_OPERATORS:
                        break
                    args.append(arg)
                commands.append((rest[at], [a for a in args if a != "..."]))
    return commands


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


# ---- the drop-in example ---------------------------------------------------------------------------


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
    torch.save(
        {f"features.{k}": v for k, v in vgg.features.state_dict().items()}, hub / "checkpoints" / TORCHVISION_FILE
    )
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(compile(code, "README example", "exec"), scope)
    assert torch.isfinite(scope["loss"]) and scope["loss"].item() > 0
    assert all(p.grad is not None for p in scope["generator"].parameters())


# ---- the README's promises ---------------------------------------------------------------------------


def test_readme_is_short_and_names_its_commands_and_pages():
    assert len(README.splitlines()) <= 250
    assert "make test" in README and "make demo" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    named = set(re.findall(r"(?:bash|python) ((?:scripts|datasets)/[\w./]+\.(?:sh|py))", README))
    assert {"scripts/train_sc.sh", "scripts/test_sc.sh", "scripts/download_vgg16.py"} <= named
    linked = set(re.findall(r"\]\(((?:docs|benchmarks)/[\w./-]+\.md)", README))
    assert {doc_id(path) for path in DOCS[1:]} <= linked, "every docs page is linked from the README"
    assert (ROOT / "Makefile").is_file() and "test-fast:" in (ROOT / "Makefile").read_text()
    for path in ("train.py", "test.py", "models/template_model.py", "docs/structure_map.png"):
        assert (ROOT / path).is_file() and path in README, path


# ---- every page ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_files_named_by_commands_exist(doc):
    """Scripts run and files named in code blocks (paths from the repository root, where commands run)."""
    blocks = "\n".join(code_blocks(doc.read_text()))
    named = set(re.findall(r"(?:^|[\s=])((?:scripts|datasets|benchmarks)/[\w./-]+\.(?:sh|py|md|jpg|png|txt))", blocks))
    named |= set(re.findall(r"(?:^|[\s=])(docs/[\w./-]+\.(?:png|jpg|md))", blocks))
    named |= {script for script, _ in python_commands(doc.read_text())}
    named |= set(re.findall(r"\bbash ([\w./-]+\.sh)", blocks))
    for path in sorted(named):
        assert (ROOT / path).is_file(), f"{doc_id(doc)}: a command names {path}, which does not exist"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_relative_links_resolve(doc):
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.exists(), f"{doc_id(doc)}: the link {target} leads nowhere"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{doc_id(doc)}: {path.name} has no heading #{anchor}"


def parse_command(script: str, argv: list[str]) -> None:
    """Parse ``argv`` as ``script`` would (argparse only: nothing is built or read)."""
    if script == "train.py":
        TrainOptions(argv).gather_options()
    elif script == "test.py":
        TestOptions(argv).gather_options()
    elif script == "test_fid.py":
        importlib.import_module("test_fid").FIDOptions(argv).gather_options()
    else:
        load_script(script).parse_args(argv)


ENTRY_POINTS = {"train.py", "test.py", "test_fid.py"} | PARSE_ARGS_SCRIPTS


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_entry_point_commands_parse(doc, tmp_path, monkeypatch, capsys):
    """Flags must be known and values valid (choices, types, registered models and dataset modes).
    ``...`` stands for options left out and is dropped."""
    monkeypatch.chdir(tmp_path)  # no checkpoints/<name>/opt.json of a local run changes the defaults
    for script, argv in python_commands(doc.read_text()):
        if script not in ENTRY_POINTS:
            continue
        try:
            parse_command(script, argv)
        except SystemExit as exc:
            error = capsys.readouterr().err.strip()
            pytest.fail(f"{doc_id(doc)}: `python {script} {' '.join(argv)}` does not parse (exit {exc.code}): {error}")
        except (UserError, argparse.ArgumentError) as exc:
            pytest.fail(f"{doc_id(doc)}: `python {script} {' '.join(argv)}` does not parse: {exc}")


def test_the_command_checker_catches_a_wrong_flag_and_value(capsys):
    """The checker itself: a continued line is joined, comments dropped, and a bad flag or value fails."""
    text = (
        "```bash\npython train.py --dataroot ./d --model sc \\\n    --learned_attn   # LSeSim\n"
        "WANDB_MODE=offline python test.py --name x --no_such_flag 3\n"
        "torchrun --nproc_per_node=2 train.py ... --gpu_ids -1 --netG nope\n```\n"
    )
    commands = python_commands(text)
    assert commands == [
        ("train.py", ["--dataroot", "./d", "--model", "sc", "--learned_attn"]),
        ("test.py", ["--name", "x", "--no_such_flag", "3"]),
        ("train.py", ["--gpu_ids", "-1", "--netG", "nope"]),
    ]
    parse_command(*commands[0])
    for script, argv in commands[1:]:
        with pytest.raises(SystemExit):
            parse_command(script, argv)
    assert "--no_such_flag" in capsys.readouterr().err
    with pytest.raises(UserError):
        parse_command("train.py", ["--model", "nope"])
