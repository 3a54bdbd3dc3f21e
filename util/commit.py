"""One save = several files made current together, or not at all.

A save of tag ``T`` (``latest``, an epoch number, ``iter_<N>``) writes the files users know
(``T_net_G.pth``, ..., ``T_train_state.pth``) in three phases:

1. each file is written, flushed and fsynced under a pending name ``.<file>.pending`` next to it;
2. the marker ``.T.commit`` (JSON: the file names and the step they hold) is written under a
   temporary name and renamed into place: **the commit point**;
3. each pending file is renamed onto its real name (for ``latest`` the file it replaces is first
   renamed to ``prev_latest_...``, so the previous complete save stays on disk), then the marker
   is removed.

A process that dies before the commit point leaves the previous save untouched (its pending files
are removed by :func:`recover_saves`); one that dies after it leaves a marker, and
:func:`recover_saves` finishes the renames. Readers (test.py) that find a marker read the pending
file instead (:func:`committed_path`), so the real names always give one complete save. A failed
write (disk full, permission, I/O error) removes this save's pending files and raises
:class:`SaveError`, one line naming the file and the OS error. Nothing with a NaN or infinite
tensor is ever written (:func:`check_finite`).
"""

from __future__ import annotations

import errno
import glob
import io
import json
import os
from typing import Any, Iterator, Optional

import torch

from util.errors import UserError

PREVIOUS = "prev_"  # prefix of the previous complete save's files (kept for 'latest')


class SaveError(UserError):
    """A save that could not be written (one line: the file, the OS error, what was kept)."""


def pending_path(path: str) -> str:
    """``dir/.<name>.pending``: where a file of an uncommitted save is written."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.pending")


def marker_path(save_dir: str, tag: str) -> str:
    """``<save_dir>/.<tag>.commit``: the commit marker of a save of ``tag``."""
    return os.path.join(save_dir, f".{tag}.commit")


# A save's file operations are these three functions and nothing else (the tests make a save fail or "die"
# at each one in turn by replacing them).
def _write(path: str, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace(source: str, target: str) -> None:
    os.replace(source, target)


def _remove(path: str) -> None:
    os.remove(path)


def _fsync_dir(folder: str) -> None:
    """Make the renames in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tensors(obj: Any, name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) for every tensor inside nested dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        yield name, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{name}.{key}" if name else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from _tensors(value, f"{name}.{index}")


def check_finite(files: dict[str, Any], tag: str) -> None:
    """SaveError naming the first floating-point tensor with a NaN or inf among ``files`` (name -> object)."""
    named = [
        (f"{file}: {key}", t)
        for file, obj in files.items()
        for key, t in _tensors(obj, "")
        if t.is_floating_point() and t.numel()
    ]
    if not named:
        return
    flags = torch.stack([torch.isfinite(t).all().cpu() for _, t in named])  # one verdict per tensor
    if bool(flags.all()):
        return
    first = named[int((~flags).nonzero()[0])][0]
    raise SaveError(f"not saving '{tag}': {first} is not finite (NaN or inf); the previous '{tag}' save is kept")


def _os_error(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else ""
    reason = exc.strerror or str(exc)
    return f"{reason} ({code})" if code else reason


def commit_save(
    save_dir: str, tag: str, files: dict[str, Any], step: Optional[dict] = None, keep_previous: bool = False
) -> None:
    """Write ``files`` (file name in ``save_dir`` -> object for torch.save) as one save of ``tag``.

    ``step``: what the save holds (epoch, steps, ...), recorded in the marker. ``keep_previous``:
    keep the files this save replaces as ``prev_<file>`` (a complete older save to fall back on).
    """
    os.makedirs(save_dir, exist_ok=True)
    recover_saves(save_dir)
    check_finite(files, tag)
    marker = marker_path(save_dir, tag)
    record = {"tag": tag, "files": list(files), "keep_previous": keep_previous, "step": step or {}}
    written: list[str] = []
    current = ""
    try:
        for name, obj in files.items():
            current = os.path.join(save_dir, name)
            buffer = io.BytesIO()
            torch.save(obj, buffer)  # serialised in memory: a failed write is an OSError with its errno
            written.append(pending_path(current))
            _write(written[-1], buffer.getbuffer())
        current = marker
        written.append(marker + ".tmp")
        _write(written[-1], json.dumps(record).encode())
        _replace(written[-1], marker)
    except OSError as exc:
        for path in written:
            try:
                os.remove(path)
            except OSError:
                pass
        raise SaveError(
            f"could not save {current}: {_os_error(exc)}; nothing of this '{tag}' save was kept, the "
            f"previous '{tag}' save is intact (resume from it with --continue_train)"
        ) from None
    _fsync_dir(save_dir)
    try:
        _roll_forward(save_dir, record)
    except OSError as exc:
        raise SaveError(
            f"'{tag}' saved but not yet in place in {save_dir}: {_os_error(exc)}; --continue_train finishes it"
        ) from None


def _roll_forward(save_dir: str, record: dict) -> None:
    """Phase 3 of a committed save: rename each pending file into place, then remove the marker. Idempotent."""
    for name in record["files"]:
        final = os.path.join(save_dir, name)
        pending = pending_path(final)
        if not os.path.exists(pending):
            continue  # already in place
        if record.get("keep_previous") and os.path.exists(final):
            _replace(final, os.path.join(save_dir, PREVIOUS + name))
        _replace(pending, final)
    _fsync_dir(save_dir)
    _remove(marker_path(save_dir, record["tag"]))


def _read_marker(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        return record if isinstance(record, dict) and isinstance(record.get("files"), list) else None
    except (OSError, ValueError):
        return None


def recover_saves(save_dir: str) -> list[str]:
    """Finish every committed save in ``save_dir`` and remove uncommitted ones; returns what was done, one line each.

    Only the process that holds the run's lock (train.py) may call it.
    """
    notes = []
    for marker in sorted(glob.glob(os.path.join(glob.escape(save_dir), ".*.commit"))):
        record = _read_marker(marker)
        if record is None:  # written to a temporary name and renamed: only damage makes it unreadable
            os.remove(marker)
            notes.append(f"removed the unreadable commit marker {marker}")
            continue
        _roll_forward(save_dir, record)
        notes.append(f"finished the interrupted '{record['tag']}' save ({_describe(record.get('step', {}))})")
    leftovers = glob.glob(os.path.join(glob.escape(save_dir), ".*.pending")) + glob.glob(
        os.path.join(glob.escape(save_dir), ".*.commit.tmp")
    )
    for path in sorted(leftovers):
        os.remove(path)
    if leftovers:
        notes.append(f"removed {len(leftovers)} file(s) of a save that was interrupted before it was complete")
    return notes


def _describe(step: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in step.items()) or "networks only"


def committed_path(path: str) -> str:
    """The file to read for ``path``: its pending version when a committed save is not yet in place."""
    pending = pending_path(path)
    if not os.path.exists(pending):
        return path
    name = os.path.basename(path)
    for marker in glob.glob(os.path.join(glob.escape(os.path.dirname(path) or "."), ".*.commit")):
        record = _read_marker(marker)
        if record is not None and name in record["files"]:
            return pending
    return path
