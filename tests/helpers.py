"""Helpers shared by several test modules (imported as ``helpers``: pytest puts tests/ on sys.path)."""

import re
import sys
from pathlib import Path

from util.errors import run_cli


def run_script(script, argv, monkeypatch):
    """Run a script's main through run_cli as the command line would; returns the exit code."""
    monkeypatch.setattr(sys, "argv", [script.__file__] + [str(a) for a in argv])
    try:
        run_cli(script.main)
    except SystemExit as exc:
        return exc.code
    return 0


def reference_sections(path: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    """Parse a ../shared/reference key list: '## net_X: ...' headers followed by 'key (d0, d1, ...)' lines."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current = None
    for line in path.read_text().splitlines():
        header = re.match(r"## (\w+):", line)
        if header:
            current = sections.setdefault(header.group(1), {})
        elif line.strip():
            key, shape = re.match(r"(\S+) \(([\d, ]*)\)", line).groups()
            current[key] = tuple(int(d) for d in shape.split(",") if d.strip())
    return sections
