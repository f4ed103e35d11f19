"""Named environments: the three ways targets.toml can describe one, and their errors."""

from __future__ import annotations

import pytest

from pgcutover.config import parse_env_file, resolve_environment
from pgcutover.errors import ConfigError

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
            "RELATIONAL_DB_PORT must be an integer",
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
