"""A Docker daemon for the container tests: the one already running, or one started here as
root the way our machines and CI allow (`dockerd --iptables=false --ip6tables=false
--bridge=none`: there is no bridge network) and stopped again at the end. Where neither is
possible the tests skip with the reason; in CI (CI=true) they fail instead: CI must run them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgcutover.errors import ServerStartError
from pgcutover.providers.daemon import docker_client

DOCKERD = ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none"]
START_TIMEOUT = 60.0


def _answers() -> bool:
    try:
        docker_client().close()
    except ServerStartError:
        return False
    return True


def _why_not_startable() -> str | None:
    if os.geteuid() != 0:
        return "no Docker daemon answers, and starting one needs root"
    if shutil.which("dockerd") is None:
        return (
            "no Docker daemon answers, and dockerd is not installed "
            "(scripts/bootstrap --docker installs Debian's docker.io)"
        )
    return None


@contextlib.contextmanager
def daemon() -> Iterator[float | None]:
    """A running daemon for the duration; yields the seconds it took to start one, or None
    when one was already running (which is then left alone)."""
    if _answers():
        yield None
        return
    reason = _why_not_startable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the container tests: {reason}")
        pytest.skip(reason)
    log = Path(tempfile.mkstemp(prefix="pgcutover-dockerd-", suffix=".log")[1])
    started = time.monotonic()
    with log.open("w") as handle:
        process = subprocess.Popen(
            DOCKERD, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while not _answers():
            if process.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"dockerd did not come up:\n{tail}")
            time.sleep(0.2)
        yield time.monotonic() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink()
