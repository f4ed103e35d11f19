"""The run's private work folder (servers' data directories, the state file with generated
passwords, dumps, every temporary file) and what makes sure it never outlives the run:
SIGTERM and SIGHUP end the run through pytest's interrupted path, as Ctrl-C does, and a
folder whose owner died without cleaning up (SIGKILL, a lost machine) is cleaned by the next
run, its servers stopped and its scratch databases dropped."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import psutil

PREFIX = "pgcutover-run-"
OWNER = "owner.json"
#: Signals that end a run the way Ctrl-C does: a cancelled CI job, `timeout`, a closed terminal.
ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _identity(pid: int) -> dict[str, object]:
    return {"pid": pid, "started": psutil.Process(pid).create_time(), "host": socket.gethostname()}


def create() -> Path:
    """A new private run folder in the system's temporary directory, owned by this process."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    folder.chmod(0o711)
    (folder / OWNER).write_text(json.dumps(_identity(os.getpid())))
    return folder


def _owner_gone(folder: Path) -> bool:
    """True when the process that created `folder` on this machine no longer runs."""
    try:
        owner = json.loads((folder / OWNER).read_text())
    except (OSError, ValueError):
        return False
    if owner.get("host") != socket.gethostname():
        return False
    try:
        return psutil.Process(int(owner["pid"])).create_time() != owner["started"]
    except psutil.NoSuchProcess:
        return True


def clean_stale(stop: Callable[[Path], list[str]]) -> list[str]:
    """Stop what dead runs left behind (`stop(folder)` stops a folder's recorded servers)
    and remove their folders; returns a line per folder cleaned."""
    cleaned = []
    for folder in sorted(Path(tempfile.gettempdir()).glob(PREFIX + "*")):
        if folder.is_dir() and _owner_gone(folder):
            problems = stop(folder)
            shutil.rmtree(folder, ignore_errors=True)
            cleaned.append(
                f"removed {folder} left by a run that died"
                + (f" ({'; '.join(problems)})" if problems else "")
            )
    return cleaned


def keep_temporary_files_in(folder: Path) -> None:
    """Every temporary file of this run (and of the processes it starts) goes inside the run
    folder, so removing the folder removes them too."""
    inside = folder / "tmp"
    inside.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(inside)
    tempfile.tempdir = None


#: The signals that reached this run, in order (a library that swallows the interrupt it
#: raised cannot make the run look complete).
RECEIVED: list[str] = []


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """End the run as Ctrl-C would; a second SIGTERM or SIGHUP waits for the clean-up."""
    name = signal.Signals(signum).name
    RECEIVED.append(name)
    if signum != signal.SIGINT:
        for ending in ENDING[1:]:
            signal.signal(ending, signal.SIG_IGN)
    raise KeyboardInterrupt(f"stopped by {name}")


def end_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP interrupt the run (pytest then reports and cleans up), and
    each is remembered in RECEIVED."""
    for ending in ENDING:
        signal.signal(ending, _interrupt)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """No signal interrupts what is inside (the clean-up must finish)."""
    previous = {ending: signal.signal(ending, signal.SIG_IGN) for ending in ENDING}
    try:
        yield
    finally:
        for ending, handler in previous.items():
            signal.signal(ending, handler)
