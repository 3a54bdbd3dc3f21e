"""Assemble a folder to push to a Hugging Face Space: the web page (app.py) on a model from the Hub.

    python scripts/make_space.py --model_id you/h2z --out my-space

Copies spaces/ (the Space card README.md with its YAML header, space_app.py, the pinned requirements.txt),
app.py, translator.py and the Python files of the packages they import (data, inference, models, options, util) into
``--out``, and writes ``--model_id`` to model_id.txt (a Space variable MODEL_ID overrides it). ``--out`` may be
a clone of the Space's repository: files of the same name are replaced, others are kept. Then push it
(docs/web_app.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from options.base_options import OptionParser
from util.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]

SPACE_FILES = ("README.md", "requirements.txt", "space_app.py")  # from spaces/
CODE_FILES = ("app.py", "translator.py")
PACKAGES = ("data", "inference", "models", "options", "util")


def make_space(model_id: str, out: Path) -> list[Path]:
    """Write the Space folder ``out`` serving ``model_id``; the files written, relative to ``out``."""
    if out.resolve() == ROOT or ROOT in out.resolve().parents:
        raise UserError(f"--out {out}: give a folder outside this repository (a clone of the Space)")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    sources = [(ROOT / "spaces" / name, Path(name)) for name in SPACE_FILES]
    sources += [(ROOT / name, Path(name)) for name in CODE_FILES]
    for package in PACKAGES:
        sources += [
            (path, path.relative_to(ROOT))
            for path in sorted((ROOT / package).rglob("*.py"))
            if "__pycache__" not in path.parts
        ]
    written = []
    for source, relative in sources:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(relative)
    (out / "model_id.txt").write_text(model_id + "\n")
    return written + [Path("model_id.txt")]


def main() -> None:
    parser = OptionParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model_id",
        required=True,
        help="the model's Hugging Face Hub id (owner/name); comma-separated ids give a menu",
    )
    parser.add_argument("--out", required=True, type=Path, help="the Space folder to write (created if missing)")
    args = parser.parse_args()
    written = make_space(args.model_id, args.out)
    print(f"wrote {len(written)} files to {args.out}: push them to your Space (docs/web_app.md)")


if __name__ == "__main__":
    run_cli(main)
