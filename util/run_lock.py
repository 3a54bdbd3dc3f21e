"""One train.py per checkpoints/<name>/: a lock file naming the holder, plus the kernel's advisory lock.

The lock file ``checkpoints/<name>/train.lock`` holds the holder's host, process id and start time
(JSON). Where the file system has them, ``fcntl.flock`` makes the lock the kernel's: it ends with the
process however that ends (kill -9 included), so a lock file whose flock is free is stale and is
taken over with a one-line notice. Without flock (Windows, some network file systems) a lock file
naming a process of this host that no longer runs is stale; one from another host is trusted.
Only train.py (rank 0 under torchrun) takes the lock; test.py and the other readers never need it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from types import TracebackType
from typing import Optional

from util.errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "train.lock"


def _describe(holder: dict) -> str:
    """'pid 123 on host h, since 2026-01-01 10:00:00 UTC'."""
    if not holder:
        return "a train.py that is starting"
    since = f", since {holder['since']}" if holder.get("since") else ""
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}{since}"


def _read_holder(fd: int) -> dict:
    """The holder recorded in the open lock file ({} when empty or unreadable)."""
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive(holder: dict) -> bool:
    """Whether the recorded holder may still run (a process of another host is assumed to)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def _kernel_lock(fd: int) -> Optional[bool]:
    """flock(fd) without waiting: True taken, False held by another process, None no advisory locks here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # e.g. ENOLCK / EOPNOTSUPP on a file system without locks
        return None
    return True


class RunLock:
    """The lock on a run's folder, held from :meth:`acquire` to :meth:`release` (or as a context manager)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        self.fd: Optional[int] = None

    def acquire(self) -> Optional[str]:
        """Take the lock; returns a one-line notice when a stale lock was taken over, else None.

        UserError (one line: the holder and the way out) when another train.py holds it.
        """
        os.makedirs(self.folder, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            kernel = _kernel_lock(fd)
            holder = _read_holder(fd)
            if kernel is False or (kernel is None and holder and _alive(holder)):
                os.close(fd)
                raise UserError(
                    f"{self.folder} is in use by another train.py ({_describe(holder)}; lock file "
                    f"{self.path}): wait for it to end or stop it, or train under another --name"
                    + ("" if kernel is False else "; if that run has ended, delete the lock file")
                )
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file while we opened it: try the new one
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self.fd = fd
        if holder:
            return f"taking over the lock of {self.folder} left by train.py {_describe(holder)}, which no longer runs"
        return None

    def release(self) -> None:
        """Remove the lock file and let go of the kernel's lock (idempotent)."""
        if self.fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(
        self, kind: Optional[type], value: Optional[BaseException], traceback: Optional[TracebackType]
    ) -> None:
        self.release()
