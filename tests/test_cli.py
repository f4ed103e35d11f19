"""The command line on bad input, without starting a server: ini keys validated exactly like
flags, broken targets files, a password anywhere refused, an unreachable target reported once
with exit code 3, report folders that never nest or escape reports/, and no work folder left
in the temporary directory (issue 11, items 5, 7, 8, 9, 10 and 13)."""

from __future__ import annotations

import json

import pytest

from helpers import REPO

SUITES = str(REPO / "suites")


def fails_with_usage_error(result, *expected: str) -> str:
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    for part in expected:
        assert part in text, text
    assert "fix:" in text and "Traceback" not in text and "INTERNALERROR" not in text
    return text


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("pyproject.toml", '[tool.pytest.ini_options]\npgcutover_strategy = "nonsense"\n'),
        ("tox.ini", "[pytest]\npgcutover_strategy = nonsense\n"),
        ("pytest.ini", "[pytest]\npgcutover_strategy = nonsense\n"),
    ],
)
def test_an_ini_key_is_checked_like_its_flag(pytester, filename, text):
    (pytester.path / filename).write_text(text)
    fails_with_usage_error(
        pytester.runpytest("-p", "no:cacheprovider"),
        f"pgcutover_strategy = 'nonsense' in {filename}: 'nonsense' is not one of plain, custom, "
        "directory",
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--phase-timeout=-1"], "--phase-timeout=-1: '-1' is not a positive number of seconds"),
        (["--jobs=0"], "--jobs=0: 0 is below the minimum of 1"),
        (["--max-parallel-maintenance-workers=-3"], "-3 is below the minimum of 0"),
        (["--strategy=nonsense"], "'nonsense' is not one of plain, custom, directory"),
    ],
)
def test_flag_values_are_range_checked(pytester, args, expected):
    fails_with_usage_error(pytester.runpytest("-p", "no:cacheprovider", *args), expected)


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (
            "[targets.t]\ndsn = 'postgresql://app@db:99999/rag'\n",
            "port must be a port number from 1 to 65535, got '99999'",
        ),
        (
            "[targets.t]\ndsn = 'postgresql://app@db:abc/rag'\n",
            "port must be a port number from 1 to 65535, got 'abc'",
        ),
        ("[targets.t]\nhost = 'h'\ndatabase = 'd'\nuser = 'caf\xe9'\n", "is not UTF-8 text"),
        ("[targets.t]\nenv_file = 'app.env'\n", "app.env is not UTF-8 text"),
        (
            "[targets.t]\ndsn = 'postgresql://app@db/rag'\npassword = 'pw-in-the-file-77'\n",
            "gives a secret (password)",
        ),
        (
            "[targets.t]\ndsn = 'postgresql://app@db/rag?password=pw-in-the-file-77'\n",
            "gives a secret (password)",
        ),
        ("[targets.t]\nhost = 'h'\ndatabase = 'd'\nuser = 'u'\nsslmode = 'on'\n", "sslmode 'on'"),
    ],
)
def test_broken_targets_are_a_clear_config_error(pytester, targets, expected):
    (pytester.path / "targets.toml").write_bytes(targets.encode("latin-1"))
    (pytester.path / "app.env").write_bytes(b"RELATIONAL_DB_HOST=h\xe9\n")
    text = fails_with_usage_error(
        pytester.runpytest("-p", "no:cacheprovider", "--target=t"), expected
    )
    assert "pw-in-the-file-77" not in text


def run_unreachable(pytester: pytest.Pytester, name: str):
    """`pytest suites/ --target=NAME` against a port nobody listens on, in a subprocess with
    its own temporary directory."""
    from pgcutover.providers.embedded import free_port

    (pytester.path / "targets.toml").write_text(
        f"[targets.'{name}']\nhost = '127.0.0.1'\nport = {free_port()}\ndatabase = 'app'\n"
        "user = 'app'\n"
    )
    temporary = pytester.path / "tmp"
    temporary.mkdir()
    pytester._monkeypatch.setenv("TMPDIR", str(temporary))
    result = pytester.runpytest_subprocess(
        SUITES,
        f"--target={name}",
        f"--targets-file={pytester.path / 'targets.toml'}",
        f"--reports-dir={pytester.path / 'reports'}",
        "-p",
        "no:cacheprovider",
        timeout=120,
    )
    return result, "\n".join(result.outlines + result.errlines), temporary


def test_an_unreachable_target_is_reported_once_and_leaves_nothing(pytester):
    result, text, temporary = run_unreachable(pytester, "staging")
    assert result.ret == 3, text
    assert text.count("cannot reach staging") == 1, text
    assert "pg_isready" in text and "verdict: NO-GO" in text
    assert "_pytest.outcomes.Exit" not in text and "Traceback" not in text
    assert list(temporary.iterdir()) == [], "the run's work folder was left behind"
    signoff = json.loads((pytester.path / "reports" / "latest" / "signoff.json").read_text())
    assert signoff["verdict"] == "NO-GO"
    assert [c["id"] for c in signoff["checks"]] == ["connectivity.target"]


def test_help_leaves_no_work_folder(pytester):
    temporary = pytester.path / "tmp"
    temporary.mkdir()
    pytester._monkeypatch.setenv("TMPDIR", str(temporary))
    result = pytester.runpytest_subprocess(SUITES, "--help", timeout=120)
    assert result.ret == 0
    assert list(temporary.iterdir()) == []
    assert "one of: plain, custom, directory" in " ".join(" ".join(result.outlines).split())


@pytest.mark.parametrize("name", ["../../escaped", "eu/prod"])
def test_a_target_name_never_nests_or_escapes_reports(pytester, name):
    reports = pytester.path / "reports"
    (reports / "latest").mkdir(parents=True)
    (reports / "latest" / "signoff.json").write_text('{"run_id": "an older run"}')
    result, text, _ = run_unreachable(pytester, name)
    assert result.ret == 3, text
    runs = [path for path in reports.iterdir() if path.name != "latest"]
    assert len(runs) == 1 and runs[0].is_dir(), sorted(reports.rglob("*"))
    assert (runs[0] / "signoff.json").is_file() and not list(runs[0].glob("*/signoff.json"))
    latest = json.loads((reports / "latest" / "signoff.json").read_text())
    assert latest["run_id"] == runs[0].name, "reports/latest shows this run"
    assert latest["target"]["label"] == name
    outside = [p for p in pytester.path.rglob("signoff.json") if reports not in p.parents]
    assert outside == []
