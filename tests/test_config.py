"""Configuration: options validated one way from the command line and ini files; named
environments (the three ways targets.toml can describe one, every libpq parameter kept, no
password accepted) and their session limits; report folder names."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict

import psycopg
import pytest

from pgcutover.config import FIXTURES_DIR, OPTIONS, parse_env_file, resolve_environment
from pgcutover.db import Endpoint
from pgcutover.errors import ConfigError
from pgcutover.report.writer import slug
from pgcutover.sessions import SessionLimits

GUIDE_ENV = """\
# Production .env, as in the migration guide's step 2
NODE_ENV=production

RELATIONAL_DB_PROVIDER=postgres
RELATIONAL_DB_HOST=db.your-project.supabase.co
RELATIONAL_DB_PORT=6543
RELATIONAL_DB_DATABASE=postgres
RELATIONAL_DB_USERNAME=postgres
RELATIONAL_DB_PASSWORD="s3cret value # not a comment"
RELATIONAL_DB_SSL=true

export VECTOR_DB_DIMENSIONS=384  # must match the model
EMBEDDINGS_XENOVA_MODEL='Xenova/all-MiniLM-L6-v2'
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_the_guides_env_file_becomes_an_endpoint(tmp_path):
    write(tmp_path, ".env.production", GUIDE_ENV)
    targets = write(
        tmp_path, "targets.toml", "[targets.production]\nenv_file = '.env.production'\n"
    )
    environment = resolve_environment("production", targets, environ={})
    endpoint = environment.endpoint
    assert (endpoint.host, endpoint.port, endpoint.dbname, endpoint.user) == (
        "db.your-project.supabase.co",
        6543,
        "postgres",
        "postgres",
    )
    assert endpoint.password == "s3cret value # not a comment"
    assert endpoint.sslmode == "require", "RELATIONAL_DB_SSL=true means TLS is required"
    assert environment.vector_dimensions == 384
    assert environment.embedding_model == "Xenova/all-MiniLM-L6-v2"
    assert "s3cret" not in repr(endpoint) and "s3cret" not in endpoint.safe_dsn()


def test_ssl_false_does_not_require_tls(tmp_path):
    write(
        tmp_path, "dev.env", GUIDE_ENV.replace("RELATIONAL_DB_SSL=true", "RELATIONAL_DB_SSL=false")
    )
    targets = write(tmp_path, "targets.toml", "[targets.dev]\nenv_file = 'dev.env'\n")
    assert resolve_environment("dev", targets, environ={}).endpoint.sslmode == "prefer"


def test_a_dsn_takes_its_password_from_the_named_variable(tmp_path):
    targets = write(
        tmp_path,
        "targets.toml",
        "[targets.staging]\ndsn = 'postgresql://app@db.internal:5433/rag?sslmode=verify-full'\n"
        "password_env = 'STAGING_PW'\nvector_dimensions = 768\n",
    )
    environment = resolve_environment("staging", targets, environ={"STAGING_PW": "pw"})
    endpoint = environment.endpoint
    assert (endpoint.user, endpoint.host, endpoint.port, endpoint.dbname) == (
        "app",
        "db.internal",
        5433,
        "rag",
    )
    assert (endpoint.password, endpoint.sslmode) == ("pw", "verify-full")
    assert environment.vector_dimensions == 768


def test_host_fields(tmp_path):
    targets = write(
        tmp_path,
        "targets.toml",
        "[targets.p]\nhost = 'h'\nport = 5544\ndatabase = 'd'\nuser = 'u'\nsslmode = 'require'\n",
    )
    endpoint = resolve_environment("p", targets, environ={}).endpoint
    assert (endpoint.host, endpoint.port, endpoint.dbname, endpoint.user, endpoint.sslmode) == (
        "h",
        5544,
        "d",
        "u",
        "require",
    )
    assert endpoint.password is None


@pytest.mark.parametrize(
    ("env_text", "problem"),
    [
        ("RELATIONAL_DB_HOST=h\n", "missing RELATIONAL_DB_DATABASE, RELATIONAL_DB_USERNAME"),
        (
            "RELATIONAL_DB_HOST=h\nRELATIONAL_DB_DATABASE=d\nRELATIONAL_DB_USERNAME=u\n"
            "RELATIONAL_DB_PORT=five\n",
            "RELATIONAL_DB_PORT must be a port number from 1 to 65535",
        ),
        ("this line has no equals sign\n", ":1: expected KEY=VALUE"),
    ],
)
def test_a_broken_env_file_names_the_problem(tmp_path, env_text, problem):
    write(tmp_path, "bad.env", env_text)
    targets = write(tmp_path, "targets.toml", "[targets.bad]\nenv_file = 'bad.env'\n")
    with pytest.raises(ConfigError) as raised:
        resolve_environment("bad", targets, environ={})
    assert problem in raised.value.problem
    assert raised.value.remedy


def test_a_missing_env_file_is_named(tmp_path):
    targets = write(tmp_path, "targets.toml", "[targets.x]\nenv_file = 'nowhere.env'\n")
    with pytest.raises(ConfigError, match=r"nowhere\.env does not exist"):
        resolve_environment("x", targets, environ={})


def test_env_file_comments_quotes_and_export(tmp_path):
    path = write(tmp_path, "a.env", "# c\nexport A=1\nB = 'two words'\nC=x # trailing\n\n")
    assert parse_env_file(path) == {"A": "1", "B": "two words", "C": "x"}


# Options: one validation path for the command line and ini files (issue 11, item 7).


def option(name):
    return next(option for option in OPTIONS if option.name == name)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("strategy", "nonsense", "'nonsense' is not one of plain, custom, directory"),
        ("provider", "podman", "'podman' is not one of embedded, docker, external"),
        ("docker_network", "overlay", "'overlay' is not one of host, bridge"),
        ("content_mode", "fast", "'fast' is not one of stream, bisect"),
        ("phase_timeout", "-1", "not a positive number of seconds"),
        ("phase_timeout", "0", "not a positive number of seconds"),
        ("phase_timeout", "nan", "not a positive number of seconds"),
        ("phase_timeout", "inf", "not a positive number of seconds"),
        ("jobs", "0", "below the minimum of 1"),
        ("jobs", "-2", "below the minimum of 1"),
        ("rows", "many", "'many' is not a whole number"),
        ("max_parallel_maintenance_workers", "-1", "below the minimum of 0"),
        ("maintenance_work_mem", "1GB -c fsync=off", "is not a memory size"),
        ("maintenance_work_mem", "1 GB", "is not a memory size"),
        ("reindex", "perhaps", "'perhaps' is not true or false"),
    ],
)
def test_a_bad_option_value_is_a_config_error_naming_where_it_came_from(name, text, problem):
    with pytest.raises(ConfigError) as raised:
        option(name).parse(text, f"pgcutover_{name} = {text!r} in tox.ini")
    assert raised.value.problem.startswith(f"pgcutover_{name} = {text!r} in tox.ini: ")
    assert problem in raised.value.problem
    assert f"--{name.replace('_', '-')}" in raised.value.remedy


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("strategy", "plain", "plain"),
        ("phase_timeout", "2.5", 2.5),
        ("jobs", " 4 ", 4),
        ("max_parallel_maintenance_workers", "0", 0),
        ("maintenance_work_mem", "512MB", "512MB"),
        ("exclude_schemas", "audit, staging", ("audit", "staging")),
        ("reindex", "yes", True),
    ],
)
def test_good_option_values_parse(name, text, value):
    assert option(name).parse(text, name) == value


# Named environments: DSNs, ports, encodings, passwords (items 8 and 10).


def resolve(tmp_path, targets_text, name="t", environ=None):
    targets = write(tmp_path, "targets.toml", targets_text)
    return resolve_environment(name, targets, environ=environ or {})


@pytest.mark.parametrize("port", ["99999", "abc", "0"])
def test_a_bad_dsn_port_is_a_config_error(tmp_path, port):
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, f"[targets.t]\ndsn = 'postgresql://app@db:{port}/rag'\n")
    assert f"port must be a port number from 1 to 65535, got '{port}'" in raised.value.problem
    assert "[targets.t]" in raised.value.problem


def test_a_bad_port_field_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="port must be a port number"):
        resolve(tmp_path, "[targets.t]\nhost='h'\nport=70000\ndatabase='d'\nuser='u'\n")


def test_a_dsn_libpq_cannot_parse_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, "[targets.t]\ndsn = 'postgresql://app@db/rag?sslrootcrt=/ca.pem'\n")
    assert 'invalid URI query parameter: "sslrootcrt"' in raised.value.problem
    assert "postgresql://user@host:5432/dbname" in raised.value.remedy


def test_several_hosts_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"several hosts given \(a,b\)"):
        resolve(tmp_path, "[targets.t]\ndsn = 'postgresql://app@a:5432,b:5433/rag'\n")


def test_an_invalid_sslmode_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sslmode 'verify' is not one of"):
        resolve(tmp_path, "[targets.t]\ndsn = 'postgresql://app@db/rag?sslmode=verify'\n")


def test_a_targets_file_that_is_not_utf8_is_a_config_error(tmp_path):
    targets = tmp_path / "targets.toml"
    targets.write_bytes("[targets.t]\nhost = 'h'\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        resolve_environment("t", targets, environ={})
    assert "is not UTF-8 text (line 3 holds the byte 0xe9)" in raised.value.problem
    assert "UTF-8" in raised.value.remedy


def test_an_env_file_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / "app.env").write_bytes(b"RELATIONAL_DB_HOST=h\xff\n")
    with pytest.raises(ConfigError, match=r"app\.env is not UTF-8 text \(line 1"):
        resolve(tmp_path, "[targets.t]\nenv_file = 'app.env'\n")


def test_every_libpq_parameter_of_a_dsn_is_kept(tmp_path):
    dsn = (
        "postgresql://app@db.internal:5433/rag?sslmode=verify-full&sslrootcert=/etc/ca.pem"
        "&sslcert=/etc/client.crt&sslkey=/etc/client.key&target_session_attrs=read-write"
        "&options=-c%20search_path%3Dapp&keepalives_idle=7&connect_timeout=4"
    )
    endpoint = resolve(
        tmp_path, f"[targets.t]\ndsn = '{dsn}'\npassword_env = 'PW'\n", environ={"PW": "s3cret"}
    ).endpoint
    assert (endpoint.host, endpoint.port, endpoint.dbname, endpoint.sslmode) == (
        "db.internal",
        5433,
        "rag",
        "verify-full",
    )
    expected = {
        "sslrootcert": "/etc/ca.pem",
        "sslcert": "/etc/client.crt",
        "sslkey": "/etc/client.key",
        "target_session_attrs": "read-write",
        "options": "-c search_path=app",
        "keepalives_idle": "7",
        "connect_timeout": "4",
    }
    assert dict(endpoint.params) == expected
    conninfo = psycopg.conninfo.conninfo_to_dict(endpoint.conninfo(options="-c jit=off"))
    assert {key: conninfo[key] for key in expected if key != "options"} == {
        key: value for key, value in expected.items() if key != "options"
    }
    assert conninfo["options"] == "-c search_path=app -c jit=off", "the DSN's options come first"
    env = endpoint.libpq_env()
    assert (env["PGSSLROOTCERT"], env["PGSSLCERT"], env["PGSSLKEY"]) == (
        "/etc/ca.pem",
        "/etc/client.crt",
        "/etc/client.key",
    )
    assert (env["PGTARGETSESSIONATTRS"], env["PGOPTIONS"], env["PGCONNECT_TIMEOUT"]) == (
        "read-write",
        "-c search_path=app",
        "4",
    )
    assert psycopg.conninfo.conninfo_to_dict(endpoint.tool_dbname()) == {
        "dbname": "rag",
        "keepalives_idle": "7",
    }, "what no environment variable carries reaches the tools through --dbname"
    printable = endpoint.safe_dsn()
    assert "s3cret" not in printable
    parsed = psycopg.conninfo.conninfo_to_dict(printable)
    assert {key: parsed[key] for key in expected} == expected, "safe_dsn parses back whole"


def test_libpq_parameters_by_name_in_a_host_table(tmp_path):
    endpoint = resolve(
        tmp_path,
        "[targets.t]\nhost='h'\ndatabase='d'\nuser='u'\nsslmode='verify-ca'\n"
        "sslrootcert='/ca.pem'\nvector_dimensions=384\n",
    ).endpoint
    assert dict(endpoint.params) == {"sslrootcert": "/ca.pem"}
    assert endpoint.sslmode == "verify-ca"


SECRET = "hunter2-very-secret"


@pytest.mark.parametrize(
    "targets_text",
    [
        f"[targets.t]\nhost='h'\ndatabase='d'\nuser='u'\npassword='{SECRET}'\n",
        f"[targets.t]\ndsn='postgresql://u@h/d'\npassword='{SECRET}'\n",
        f"[targets.t]\nenv_file='app.env'\npassword='{SECRET}'\n",
        f"[targets.t]\ndsn='postgresql://u@h/d?password={SECRET}'\n",
        f"[targets.t]\ndsn='postgresql://u@h/d?sslmode=require&password={SECRET}'\n",
        f"[targets.t]\ndsn='postgresql://u:{SECRET}@h/d'\n",
        f"[targets.t]\ndsn='host=h dbname=d password={SECRET}'\n",
        f"[targets.t]\ndsn='host=h dbname=d password=\"{SECRET} x\" port=5432'\n",
        f"[targets.t]\ndsn='postgresql://u@h/d?sslpassword={SECRET}'\n",
    ],
)
def test_a_password_in_any_form_is_refused_loudly(tmp_path, targets_text):
    write(tmp_path, "app.env", GUIDE_ENV)
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, targets_text)
    assert "gives a secret" in raised.value.problem
    assert "password_env" in raised.value.remedy
    assert SECRET not in str(raised.value)


# Session limits for named environments (item 12, production-safe sessions).


def test_named_environments_get_the_default_session_limits(tmp_path):
    endpoint = resolve(tmp_path, "[targets.t]\nhost='h'\ndatabase='d'\nuser='u'\n").endpoint
    defaults = tomllib.loads((FIXTURES_DIR / "sessions.toml").read_text())
    assert endpoint.limits == SessionLimits(**defaults)
    assert endpoint.limits.lock_timeout_ms > 0 and endpoint.limits.statement_timeout_ms > 0
    assert endpoint.limits.read_timeout_s * 1000 > endpoint.limits.statement_timeout_ms


def test_session_limits_are_overridden_per_environment(tmp_path):
    endpoint = resolve(
        tmp_path,
        "[sessions]\nlock_timeout_ms = 500\nmax_connections = 3\n"
        "[targets.t]\nhost='h'\ndatabase='d'\nuser='u'\n"
        "[targets.t.sessions]\nmax_connections = 2\n",
    ).endpoint
    assert (endpoint.limits.lock_timeout_ms, endpoint.limits.max_connections) == (500, 2)
    again = Endpoint.from_json(json.loads(json.dumps(asdict(endpoint))))
    assert again == endpoint, "endpoints survive the state file that xdist workers read"


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("max_connections = 1", "max_connections = 1 must be a number of at least 2"),
        ("lock_timeout_ms = -5", "lock_timeout_ms = -5 must be a number of at least 0"),
        ("read_timeout_s = 'long'", "read_timeout_s = 'long' must be a number"),
        ("statement_timeout_ms = 700000", "does not exceed statement_timeout_ms = 700000"),
    ],
)
def test_bad_session_limits_are_config_errors(tmp_path, section, problem):
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, f"[sessions]\n{section}\n[targets.t]\nhost='h'\ndatabase='d'\nuser='u'\n")
    assert problem in raised.value.problem


# Report folders (item 5).


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("staging", "staging"),
        ("../../etc", "etc"),
        ("eu/prod", "eu-prod"),
        ("..", "unnamed"),
        ("/", "unnamed"),
        ("prod.eu-1 (new)", "prod-eu-1-new"),
        ("x" * 100, "x" * 40),
    ],
)
def test_a_target_name_becomes_one_safe_folder_name(name, expected):
    assert slug(name) == expected
