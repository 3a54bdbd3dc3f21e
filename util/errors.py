"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (a bad option, a missing folder, an unreadable
file). ``train.py`` / ``test.py`` catch it and print its one-line message without a traceback, then
exit with status 2. Anything else is a bug and keeps its traceback.
"""

from typing import Callable


class UserError(Exception):
    """A one-line, user-fixable error: name the option, path or file and what is allowed."""


def worker_message(exc: BaseException) -> str:
    """The original one-line message of an error re-raised from a DataLoader worker.

    PyTorch re-raises worker errors with the worker's traceback prepended; the user only needs the
    last line (``UserError: cannot read image ...``) without the class name.
    """
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else str(exc)
    # The worker's last traceback line names the class, with or without its module.
    for prefix in (f"{type(exc).__module__}.{type(exc).__qualname__}: ", f"{type(exc).__name__}: "):
        if last.startswith(prefix):
            return last[len(prefix) :]
    return last


def run_cli(main: "Callable[[], object]") -> None:
    """Run a script's ``main``: user errors print one line and exit 2; Ctrl-C exits 130."""
    import sys

    try:
        main()
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
