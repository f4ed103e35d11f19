"""One config path: every setting is a CLI option and an ini key with one help string,
resolved once into a frozen Settings (CLI > ini > default; connections from targets.toml)."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg

from pgcutover.db import LIBPQ_ENV, OWN_KEYWORDS, DataRole, Endpoint
from pgcutover.errors import ConfigError
from pgcutover.providers.docker import NETWORKS, running_container
from pgcutover.sessions import SessionLimits

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
DEFAULT_MODEL = "Xenova/all-MiniLM-L6-v2"
DEFAULT_DIMENSIONS = 384
STRATEGIES = ("plain", "custom", "directory", "logical")
#: The writes a logical migration makes on the source, each allowed on a named source only
#: when --allow-source-writes names it.
SOURCE_WRITES = ("publication", "slot")
PROVIDERS = ("embedded", "docker", "external")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: libpq keywords holding a secret: refused in targets.toml (passwords come from password_env).
SECRET_KEYWORDS = frozenset(
    {"password", "sslpassword", "scram_client_key", "scram_server_key", "oauth_client_secret"}
)
#: Schemas that belong to PostgreSQL itself, never compared.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class Option:
    """A setting's one definition: CLI flag, ini key, type, default and help."""

    name: str
    kind: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "pgcutover_" + self.name

    @property
    def is_switch(self) -> bool:
        """A flag given without a value on the command line (`--reindex`)."""
        return self.kind is switch

    def parse(self, text: object, given_as: str) -> Any:
        """The one validation of a setting, whether it came from the command line or an ini
        file: its type and range (`kind`), then its allowed values."""
        try:
            value = self.kind(str(text))
        except ValueError as error:
            raise ConfigError(
                f"{given_as}: {error}",
                f"give {self.flag} (ini {self.ini}) a valid value: {self.help}",
            ) from None
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"{given_as}: {value!r} is not one of {', '.join(self.choices)}",
                f"set {self.flag} to one of {', '.join(self.choices)}",
            )
        return value


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{value} is below the minimum of {minimum}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _count(text: str) -> int:
    """A number of things that may be none (0 parallel workers)."""
    return _whole_number(text, 0)


def _seconds(text: str) -> float:
    """A duration in seconds: a finite number above zero."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


def _memory(text: str) -> str:
    """A PostgreSQL memory size (64MB, 1GB): it reaches the server inside a -c option, so
    nothing but digits and a unit may pass."""
    value = text.strip()
    if not re.fullmatch(r"[1-9][0-9]*(B|kB|MB|GB|TB)?", value):
        raise ValueError(f"{text!r} is not a memory size such as 512MB or 1GB")
    return value


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in str(text).split(",") if part.strip())


def switch(text: str) -> bool:
    """An on/off setting's ini value: true/yes/on/1 or false/no/off/0."""
    value = str(text).strip().lower()
    if value not in {"true", "yes", "on", "1", "false", "no", "off", "0"}:
        raise ValueError(f"{text!r} is not true or false")
    return value in {"true", "yes", "on", "1"}


OPTIONS: tuple[Option, ...] = (
    Option(
        "source",
        str,
        None,
        "name of the source environment in targets.toml "
        "(default: an embedded PostgreSQL 16 + pgvector 0.6 seeded by pgcutover)",
    ),
    Option(
        "target",
        str,
        None,
        "name of the target environment in targets.toml "
        "(default: an embedded PostgreSQL 18 + pgvector 0.8)",
    ),
    Option("targets_file", str, "targets.toml", "TOML file naming the environments"),
    Option(
        "provider",
        str,
        "embedded",
        "where servers not named by --source/--target come from",
        choices=PROVIDERS,
    ),
    Option(
        "source_image",
        str,
        None,
        "container image of the rehearsal source with --provider=docker; default from "
        "fixtures/docker.toml (pgvector/pgvector:pg16), or [docker] in targets.toml",
    ),
    Option(
        "target_image",
        str,
        None,
        "container image of the rehearsal target with --provider=docker; default from "
        "fixtures/docker.toml (pgvector/pgvector:pg18), or [docker] in targets.toml",
    ),
    Option(
        "docker_network",
        str,
        "host",
        "containers share the host's network, each server on its own free port of 127.0.0.1 "
        "(host), or publish 5432 on 127.0.0.1 through Docker's bridge (bridge)",
        choices=NETWORKS,
    ),
    Option(
        "strategy",
        str,
        "custom",
        "migration: plain (pg_dump | psql), custom (-Fc + "
        "pg_restore -j), directory (-Fd + pg_restore -j), logical (schema first, then "
        "logical replication while the source keeps writing, and a switchover)",
        choices=STRATEGIES,
    ),
    Option(
        "allow_source_writes",
        _csv,
        (),
        "writes pgcutover may make on a named source, by name: publication,slot (what "
        "--strategy=logical creates on the source and always removes at the end)",
    ),
    Option("rows", _positive_int, 5000, "vector chunks seeded into the rehearsal source"),
    Option(
        "project_rows",
        _positive_int,
        None,
        "chunks (rows of the largest vector table) to project the cutover window to, every "
        "table growing alike; default: the source's own size",
    ),
    Option("jobs", _positive_int, 2, "parallel jobs for pg_restore"),
    Option(
        "maintenance_work_mem",
        _memory,
        None,
        "maintenance_work_mem for the index builds pgcutover runs (seeding, restore): an HNSW "
        "graph that does not fit spills and builds several times slower. Default: the largest "
        "graph's size plus a quarter, within half the available memory of this machine; 1GB "
        "for a server pgcutover does not run",
    ),
    Option(
        "max_parallel_maintenance_workers",
        _count,
        None,
        "parallel workers per index build (seeding, restore). Default: one per core beyond "
        "the first; 1 for a server pgcutover does not run",
    ),
    Option(
        "phase_timeout",
        _seconds,
        1800.0,
        "seconds any migration phase may take before it is stopped and reported as stalled",
    ),
    Option("reports_dir", str, "reports", "folder for reports/<run_id>/"),
    Option("signoff_by", str, "", "who may approve the cutover: named on the sign-off"),
    Option("exclude_schemas", _csv, (), "comma-separated schemas left out of every check"),
    Option("cache_dir", str, "", "embedding cache folder (default ~/.cache/pgcutover)"),
    Option(
        "reindex",
        switch,
        False,
        "re-embed every chunk on the target with the configured model and rewrite its vectors "
        "before the search checks (the guide's step 4; a target pgcutover did not create also "
        "needs --allow-destructive)",
    ),
    Option(
        "test_writes",
        switch,
        False,
        "run the smoke test's writes (rolled back) and the load test's write shapes on a target "
        "pgcutover did not create: even rolled back, they take locks, use sequence values and "
        "leave dead index entries",
    ),
    Option(
        "self_hosted",
        switch,
        False,
        "the throwaway target is self-hosted: restore as its superuser (default: as a managed "
        "provider's non-superuser owner, so what Supabase Cloud, RDS, Cloud SQL or Azure refuse "
        "fails in the rehearsal too); a named target always restores as its configured user",
    ),
    Option(
        "plan",
        switch,
        False,
        "print and write what the migration would do with each schema, extension, role, "
        "publication and platform part, and what it cannot do on the chosen target; then stop "
        "(no writes to the source or a named target)",
    ),
    Option(
        "content_mode",
        str,
        None,
        "content checksums: stream (rows to this machine, fastest nearby) or bisect "
        "(range checksums computed by each server, for a slow link); default from "
        "fixtures/content.toml",
        choices=("stream", "bisect"),
    ),
)


@dataclass(frozen=True)
class Environment:
    """A named environment: its endpoint and what the app there is configured with."""

    name: str
    endpoint: Endpoint
    vector_dimensions: int | None = None
    embedding_model: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved once; passwords live only inside Endpoints."""

    source: Environment | None
    target: Environment | None
    provider: str
    strategy: str
    migrate: bool
    allow_destructive: bool
    rows: int
    jobs: int
    maintenance_work_mem: str | None
    max_parallel_maintenance_workers: int | None
    phase_timeout: float
    reports_dir: Path
    exclude_schemas: tuple[str, ...]
    cache_dir: Path
    vector_dimensions: int
    embedding_model: str
    targets_file: Path
    content_mode: str | None = None
    reindex: bool = False
    test_writes: bool = False
    #: A named target with no source: the rehearsal database is migrated into a scratch
    #: database pgcutover creates on the target's server and drops afterwards.
    scratch: bool = False
    #: True when VECTOR_DB_DIMENSIONS came from an environment, not the default.
    vector_dimensions_configured: bool = False
    allow_source_writes: tuple[str, ...] = ()
    source_image: str | None = None
    target_image: str | None = None
    docker_network: str = "host"
    self_hosted: bool = False
    plan: bool = False
    project_rows: int | None = None

    @property
    def rehearsal(self) -> bool:
        """True when pgcutover creates and seeds the source itself."""
        return self.source is None

    def image(self, side: DataRole) -> str:
        """The container image for one side (--provider=docker): the option, else targets.toml
        [docker], else fixtures/docker.toml."""
        chosen = self.source_image if side == "source" else self.target_image
        return chosen or str(self.section("docker")[f"{side}_image"])

    @property
    def ignored_schemas(self) -> tuple[str, ...]:
        """System schemas plus the user's exclude list."""
        return SYSTEM_SCHEMAS + self.exclude_schemas

    def section(self, name: str) -> dict[str, Any]:
        """A concern's settings as data (see `read_section`), for the chosen target."""
        return read_section(name, self.targets_file, self.target.name if self.target else None)


def read_section(name: str, targets_file: Path, environment: str | None) -> dict[str, Any]:
    """A concern's settings as data: fixtures/<name>.toml defaults, overridden by
    targets.toml [<name>], then by [targets.<environment>.<name>]."""
    merged = (
        _read_toml(FIXTURES_DIR / f"{name}.toml")
        if (FIXTURES_DIR / f"{name}.toml").is_file()
        else {}
    )
    if targets_file.is_file():
        document = _read_toml(targets_file)
        merged = _deep_merge(merged, document.get(name, {}))
        if environment is not None:
            entry = document.get("targets", {}).get(environment, {})
            merged = _deep_merge(merged, entry.get(name, {}))
    return merged


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` wins; nested tables merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_text(path: Path) -> str:
    """A configuration file's text; unreadable or non-UTF-8 files become ConfigError."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        byte = error.object[error.start]
        raise ConfigError(
            f"{path} is not UTF-8 text (line {line} holds the byte 0x{byte:02x})",
            "save the file as UTF-8 (for example `iconv -f latin1 -t utf-8`)",
        ) from None
    except OSError as error:
        raise ConfigError(
            f"cannot read {path}: {error.strerror}", "check the path and its permissions"
        ) from None


def _read_toml(path: Path) -> dict[str, Any]:
    """A TOML document, with syntax and encoding errors turned into ConfigError."""
    try:
        return tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}", "fix the syntax") from None


def parse_env_file(path: Path) -> dict[str, str]:
    """Read a .env file: KEY=VALUE lines, `#` comments, optional quotes and `export`."""
    if not path.is_file():
        raise ConfigError(f"the .env file {path} does not exist", "fix env_file in targets.toml")
    values: dict[str, str] = {}
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"{path}:{number}: expected KEY=VALUE", "fix or comment out that line"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def _int_field(name: str, where: str, value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(
            f"{where}: {name} must be an integer, got {value!r}", f"set {name} to a number"
        ) from None


def _port(value: object, where: str, name: str = "port") -> int:
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(
            f"{where}: {name} must be a port number from 1 to 65535, got {value!r}",
            f"fix {name} (PostgreSQL listens on 5432 unless told otherwise)",
        )
    return int(text)


def _server(host: str, port: object, where: str, port_name: str = "port") -> tuple[str, int]:
    """One host and its port: a failover list names several servers, and each side of a
    comparison must be exactly one."""
    if not host:
        raise ConfigError(f"{where}: no host given", "name the server: postgresql://user@HOST/db")
    if "," in host or "," in str(port):
        raise ConfigError(
            f"{where}: several hosts given ({host})",
            "name the one server to compare (pgcutover checks one database per side)",
        )
    return host, _port(port, where, port_name)


def _sslmode(value: str, where: str) -> str:
    if value not in SSLMODES:
        raise ConfigError(
            f"{where}: sslmode {value!r} is not one of {', '.join(SSLMODES)}",
            "fix sslmode (require or verify-full for a server across a network)",
        )
    return value


def _refuse_secrets(keys: Iterable[str], where: str) -> None:
    """A password in targets.toml or a dsn is refused, never silently ignored."""
    given = sorted(SECRET_KEYWORDS.intersection(keys))
    if given:
        raise ConfigError(
            f"{where} gives a secret ({', '.join(given)}): pgcutover never reads one from "
            "targets.toml or a dsn",
            "remove it and keep the password in an environment variable: password_env = "
            "'VARIABLE' in targets.toml (--pg-password-env for locust's --pg-dsn), or "
            "RELATIONAL_DB_PASSWORD in the app's .env file named by env_file",
        )


def _entry_params(entry: Mapping[str, Any], where: str) -> dict[str, str]:
    """libpq parameters named in a [targets.<name>] table itself (sslrootcert, options, ...)."""
    _refuse_secrets(entry, where)
    return {
        key: str(value)
        for key, value in entry.items()
        if key in LIBPQ_ENV and key not in OWN_KEYWORDS
    }


def _parse_dsn(dsn: str, where: str) -> dict[str, str]:
    """A dsn (URI or key=value pairs) parsed by libpq itself, so every parameter it knows is
    kept and anything else is an error; a password in it is refused before libpq could
    echo part of it in a parse error."""
    if re.search(r"(?:^|[\s?&])password\s*=", dsn) or urlparse(dsn).password:
        _refuse_secrets(["password"], f"{where}: the dsn")
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        raise ConfigError(
            f"{where}: the dsn is not a valid connection string: {str(error).strip()}",
            "write it as postgresql://user@host:5432/dbname?sslmode=require (libpq's URI "
            "form) or as key=value pairs",
        ) from None
    _refuse_secrets(parts, f"{where}: the dsn")
    return {key: str(value) for key, value in parts.items() if value is not None}


def _from_env_file(name: str, entry: Mapping[str, Any], base: Path) -> Environment:
    """An environment described by the app's own .env file (the guide's variables)."""
    params = _entry_params(entry, f"targets.toml [targets.{name}]")
    path = (base / str(entry["env_file"])).resolve()
    env = parse_env_file(path)
    where = f"targets.toml [targets.{name}] -> {path}"
    required = ["RELATIONAL_DB_HOST", "RELATIONAL_DB_DATABASE", "RELATIONAL_DB_USERNAME"]
    missing = [key for key in required if not env.get(key)]
    if missing:
        raise ConfigError(
            f"{where}: missing {', '.join(missing)}",
            "add them to the .env file (see the migration guide, step 2)",
        )
    ssl = env.get("RELATIONAL_DB_SSL", "false").strip().lower() in {"true", "1", "yes", "on"}
    dims = env.get("VECTOR_DB_DIMENSIONS")
    host, port = _server(
        env["RELATIONAL_DB_HOST"],
        env.get("RELATIONAL_DB_PORT", "5432"),
        where,
        "RELATIONAL_DB_PORT",
    )
    endpoint = Endpoint(
        label=name,
        host=host,
        port=port,
        dbname=env["RELATIONAL_DB_DATABASE"],
        user=env["RELATIONAL_DB_USERNAME"],
        password=env.get("RELATIONAL_DB_PASSWORD") or None,
        sslmode="require" if ssl else "prefer",
        params=tuple(sorted(params.items())),
    )
    return Environment(
        name=name,
        endpoint=endpoint,
        vector_dimensions=_int_field("VECTOR_DB_DIMENSIONS", where, dims) if dims else None,
        embedding_model=env.get("EMBEDDINGS_XENOVA_MODEL") or None,
    )


def _password_from(name: str, entry: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    variable = entry.get("password_env")
    if variable is None:
        return None
    if variable not in environ:
        raise ConfigError(
            f"targets.toml [targets.{name}]: environment variable {variable} is not set",
            f"export {variable}=... before running (the password never goes in targets.toml)",
        )
    return environ[variable]


def dsn_endpoint(
    label: str,
    dsn: str,
    where: str,
    password: str | None,
    defaults: Mapping[str, str] | None = None,
) -> Endpoint:
    """An Endpoint from a dsn parsed by libpq (every parameter kept, a password refused);
    the dsn's parameters win over `defaults`."""
    parts = {**(defaults or {}), **_parse_dsn(dsn, where)}
    host, port = _server(parts.pop("host", ""), parts.pop("port", "5432"), f"{where}: the dsn")
    return Endpoint(
        label=label,
        host=host,
        port=port,
        dbname=parts.pop("dbname", "") or "postgres",
        user=parts.pop("user", "") or "postgres",
        password=password,
        sslmode=_sslmode(parts.pop("sslmode", "") or "prefer", where),
        params=tuple(sorted(parts.items())),
    )


def _from_dsn(name: str, entry: Mapping[str, Any], environ: Mapping[str, str]) -> Environment:
    """An environment given as a dsn without a password, with the table's own libpq
    parameters (sslmode too) as defaults."""
    where = f"targets.toml [targets.{name}]"
    defaults = {**_entry_params(entry, where), "sslmode": str(entry.get("sslmode", "prefer"))}
    endpoint = dsn_endpoint(
        name, str(entry["dsn"]), where, _password_from(name, entry, environ), defaults
    )
    return _with_app_settings(name, entry, endpoint)


def _from_fields(name: str, entry: Mapping[str, Any], environ: Mapping[str, str]) -> Environment:
    """An environment given as host/port/database/user + password_env (and any further
    libpq parameter by its own name)."""
    where = f"targets.toml [targets.{name}]"
    params = _entry_params(entry, where)
    missing = [key for key in ("host", "database", "user") if key not in entry]
    if missing:
        raise ConfigError(
            f"{where}: missing {', '.join(missing)}",
            "give host, port, database, user and password_env, or a dsn, or an env_file",
        )
    host, port = _server(str(entry["host"]), entry.get("port", 5432), where)
    endpoint = Endpoint(
        label=name,
        host=host,
        port=port,
        dbname=str(entry["database"]),
        user=str(entry["user"]),
        password=_password_from(name, entry, environ),
        sslmode=_sslmode(str(entry.get("sslmode", "prefer")), where),
        params=tuple(sorted(params.items())),
    )
    return _with_app_settings(name, entry, endpoint)


def _with_app_settings(name: str, entry: Mapping[str, Any], endpoint: Endpoint) -> Environment:
    dims = entry.get("vector_dimensions")
    where = f"targets.toml [targets.{name}]"
    return Environment(
        name=name,
        endpoint=endpoint,
        vector_dimensions=_int_field("vector_dimensions", where, dims) if dims else None,
        embedding_model=entry.get("embedding_model"),
    )


def _in_container(
    name: str, entry: Mapping[str, Any], base: Path, environ: Mapping[str, str]
) -> Environment:
    """An environment in a local container the user already runs (the guide's development
    database): the address from the Docker API; user, database and password from the app's
    .env file when one is named, else from the entry and the container's environment
    (POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD)."""
    where = f"targets.toml [targets.{name}]"
    found = running_container(str(entry["container"]), where)
    if "env_file" in entry:
        app = _from_env_file(name, entry, base)
        return replace(app, endpoint=replace(app.endpoint, host=found.host, port=found.port))
    user = str(entry.get("user", found.environment.get("POSTGRES_USER", "postgres")))
    endpoint = Endpoint(
        label=name,
        host=found.host,
        port=found.port,
        dbname=str(entry.get("database", found.environment.get("POSTGRES_DB", user))),
        user=user,
        password=_password_from(name, entry, environ) or found.environment.get("POSTGRES_PASSWORD"),
        sslmode=_sslmode(str(entry.get("sslmode", "prefer")), where),
        params=tuple(sorted(_entry_params(entry, where).items())),
    )
    return _with_app_settings(name, entry, endpoint)


def _limit(section: Mapping[str, Any], key: str, where: str, minimum: int) -> Any:
    """A number of at least `minimum` from a settings section (floats only for seconds)."""
    value = section.get(key)
    kinds = (int, float) if key.endswith("_s") else (int,)
    if not isinstance(value, kinds) or isinstance(value, bool) or value < minimum:
        raise ConfigError(
            f"{where}: {key} = {value!r} must be a number of at least {minimum}",
            f"fix {key} under [sessions] in targets.toml (fixtures/sessions.toml has the default)",
        )
    return value


def session_limits(name: str, targets_file: Path) -> SessionLimits:
    """What pgcutover's sessions may cost the named environment: fixtures/sessions.toml,
    overridden by targets.toml [sessions], then [targets.<name>.sessions]."""
    section = read_section("sessions", targets_file, name)
    where = f"[sessions] for {name!r}"
    limits = SessionLimits(
        statement_timeout_ms=_limit(section, "statement_timeout_ms", where, 0),
        lock_timeout_ms=_limit(section, "lock_timeout_ms", where, 0),
        idle_in_transaction_timeout_ms=_limit(section, "idle_in_transaction_timeout_ms", where, 0),
        read_timeout_s=float(_limit(section, "read_timeout_s", where, 1)),
        max_connections=_limit(section, "max_connections", where, 2),
    )
    if limits.statement_timeout_ms and limits.read_timeout_s * 1000 <= limits.statement_timeout_ms:
        raise ConfigError(
            f"{where}: read_timeout_s = {limits.read_timeout_s:g} does not exceed "
            f"statement_timeout_ms = {limits.statement_timeout_ms}",
            "raise read_timeout_s above the statement timeout, or a long query is cut by "
            "this machine before the server could cancel it cleanly",
        )
    return limits


def load_targets(path: Path) -> dict[str, Mapping[str, Any]]:
    """The [targets.*] tables of targets.toml, with TOML errors turned into ConfigError."""
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist", "create it (see targets.example.toml) or pass --targets-file"
        )
    targets = _read_toml(path).get("targets", {})
    if not isinstance(targets, dict):
        raise ConfigError(f"{path}: [targets] must be a table", "see targets.example.toml")
    return targets


def configured_source(target: str, targets_file: Path) -> str | None:
    """The source a target is verified against: `source` under [targets.<target>], else a
    top-level `source` in targets.toml; None when neither names one."""
    document = _read_toml(targets_file) if targets_file.is_file() else {}
    entry = document.get("targets", {}).get(target, {})
    default = document.get("source") if document.get("source") != target else None
    name = entry.get("source", default) if isinstance(entry, dict) else None
    if name is not None and not isinstance(name, str):
        raise ConfigError(
            f"{targets_file}: source must name an environment, got {name!r}",
            'write source = "production" (a [targets.production] table)',
        )
    return name


def resolve_environment(
    name: str, targets_file: Path, environ: Mapping[str, str] = os.environ
) -> Environment:
    """Look a named environment up in targets.toml and build its endpoint."""
    targets = load_targets(targets_file)
    if name not in targets:
        known = ", ".join(sorted(targets)) or "none"
        raise ConfigError(
            f"unknown environment {name!r} in {targets_file} (known: {known})",
            f"add a [targets.{name}] table or use one of the known names",
        )
    entry = targets[name]
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{targets_file}: [targets.{name}] must be a table", "see targets.example.toml"
        )
    if "container" in entry:
        environment = _in_container(name, entry, targets_file.parent, environ)
    elif "env_file" in entry:
        environment = _from_env_file(name, entry, targets_file.parent)
    elif "dsn" in entry:
        environment = _from_dsn(name, entry, environ)
    else:
        environment = _from_fields(name, entry, environ)
    limits = session_limits(name, targets_file)
    return replace(environment, endpoint=replace(environment.endpoint, limits=limits))


def build_settings(
    values: Mapping[str, Any],
    *,
    migrate: bool | None,
    allow_destructive: bool,
    rootdir: Path,
    environ: Mapping[str, str] = os.environ,
) -> Settings:
    """Validate the resolved option values and look up named environments."""
    targets_file = (rootdir / str(values["targets_file"])).resolve()
    target = (
        resolve_environment(values["target"], targets_file, environ) if values["target"] else None
    )
    source_name = values["source"] or (
        configured_source(values["target"], targets_file) if target else None
    )
    source = resolve_environment(source_name, targets_file, environ) if source_name else None
    scratch = target is not None and source is None
    if values["provider"] == "external" and (source is None or target is None):
        raise ConfigError(
            "--provider=external needs both --source and --target",
            "name both environments from targets.toml",
        )
    if source and target and source.name == target.name:
        raise ConfigError(
            f"--source and --target both name {source.name!r}: a database cannot be migrated "
            "into itself",
            "name the target environment with --target",
        )
    target_ephemeral = target is None or scratch
    if migrate is None:
        migrate = target_ephemeral
    if migrate and not target_ephemeral and not allow_destructive:
        raise ConfigError(
            f"--migrate would write into {target.name!r}, which pgcutover did not create",  # type: ignore[union-attr]
            "add --allow-destructive if that is intended, or drop --migrate to verify "
            "an already-migrated target",
        )
    if scratch and not migrate:
        raise ConfigError(
            f"--no-migrate with --target={target.name} alone: there is no source to verify "  # type: ignore[union-attr]
            "against",
            f'name one with --source, or `source = "..."` under [targets.{target.name}] '  # type: ignore[union-attr]
            "(or at the top of targets.toml)",
        )
    if values["reindex"] and not target_ephemeral and not allow_destructive:
        raise ConfigError(
            f"--reindex would rewrite the vectors of {target.name!r}, which pgcutover did not "  # type: ignore[union-attr]
            "create",
            "add --allow-destructive if that is intended",
        )
    _check_source_writes(values, source)
    if values["self_hosted"] and target is not None:
        raise ConfigError(
            f"--self-hosted chooses how pgcutover's throwaway target restores, but --target="
            f"{target.name} names one: it restores as the user targets.toml gives it",
            "drop --self-hosted, or drop --target to rehearse on a self-hosted throwaway target",
        )
    configured = target or source
    cache_dir = (
        Path(values["cache_dir"])
        if values["cache_dir"]
        else (Path(environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pgcutover")
    )
    return Settings(
        source=source,
        target=target,
        provider=values["provider"],
        strategy=values["strategy"],
        migrate=migrate,
        allow_destructive=allow_destructive,
        rows=values["rows"],
        jobs=values["jobs"],
        maintenance_work_mem=values["maintenance_work_mem"],
        max_parallel_maintenance_workers=values["max_parallel_maintenance_workers"],
        phase_timeout=values["phase_timeout"],
        reports_dir=(rootdir / str(values["reports_dir"])).resolve(),
        exclude_schemas=tuple(values["exclude_schemas"]),
        cache_dir=cache_dir,
        vector_dimensions=(configured.vector_dimensions if configured else None)
        or DEFAULT_DIMENSIONS,
        embedding_model=(configured.embedding_model if configured else None) or DEFAULT_MODEL,
        targets_file=targets_file,
        content_mode=values["content_mode"],
        reindex=values["reindex"],
        test_writes=values["test_writes"],
        scratch=scratch,
        vector_dimensions_configured=bool(configured and configured.vector_dimensions),
        allow_source_writes=tuple(values["allow_source_writes"]),
        source_image=values["source_image"],
        target_image=values["target_image"],
        docker_network=values["docker_network"],
        self_hosted=values["self_hosted"],
        plan=values["plan"],
        project_rows=values["project_rows"],
    )


def _check_source_writes(values: Mapping[str, Any], source: Environment | None) -> None:
    """Only known writes can be allowed, and a logical migration from a named source needs
    every write it makes allowed by name."""
    allowed = tuple(values["allow_source_writes"])
    unknown = sorted(set(allowed) - set(SOURCE_WRITES))
    if unknown:
        raise ConfigError(
            f"--allow-source-writes names {', '.join(unknown)}, which pgcutover never writes",
            f"name only {', '.join(SOURCE_WRITES)}",
        )
    missing = [write for write in SOURCE_WRITES if write not in allowed]
    if values["strategy"] == "logical" and source is not None and missing:
        raise ConfigError(
            f"--strategy=logical creates a {' and a '.join(SOURCE_WRITES)} on the source "
            f"{source.name!r}, which pgcutover did not create; not allowed: {', '.join(missing)}",
            f"add --allow-source-writes={','.join(SOURCE_WRITES)} if that is intended (both are "
            "removed at the end; the slot keeps WAL on the source while it exists)",
        )
