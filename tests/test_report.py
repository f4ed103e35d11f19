"""The sign-off files from real check results: the digest matches signoff.json, a second run
of the same target reports what changed since the first, and a malformed chart becomes a
note instead of a broken report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from helpers import execute
from pgcutover.checks import row_counts
from pgcutover.checks.base import CheckResult
from pgcutover.db import connect
from pgcutover.report.model import RunReport
from pgcutover.report.writer import write_report

COUNT = "row_counts.public.vector_embeddings"


def report(
    run_id: str, checks: list[CheckResult], minute: int = 0, target_label: str = "staging"
) -> RunReport:
    started = datetime(2026, 11, 1, 3, minute, tzinfo=UTC)
    return RunReport(
        run_id=run_id,
        started_at=started.isoformat(),
        finished_at=started.replace(second=42).isoformat(),
        source={"label": "dev"},
        target={"label": target_label},
        migration={"performed": False, "notes": ["verifying"]},
        checks=checks,
    )


def test_digest_on_the_page_is_the_sha256_of_signoff_json(pair, settings, tmp_path):
    paths = write_report(report("r1", row_counts.check(pair, settings)), tmp_path / "r1")
    digest = hashlib.sha256(paths["json"].read_bytes()).hexdigest()
    assert f"<code id='digest'>{digest}</code>" in paths["html"].read_text()
    assert json.loads(paths["json"].read_bytes())["verdict"] == "GO"


def test_second_run_reports_new_failures_and_moved_numbers(pair, settings, tmp_path: Path):
    write_report(report("r1", row_counts.check(pair, settings), 1), tmp_path / "r1")
    write_report(report("r9", [], 9, target_label="production"), tmp_path / "r9")
    with connect(pair.target, role="admin") as conn:
        row = conn.execute(
            "DELETE FROM vector_embeddings WHERE id = (SELECT min(id) FROM vector_embeddings)"
            " RETURNING id, document_id, user_id, content, embedding::text, created_at"
        ).fetchone()
    paths = write_report(report("r2", row_counts.check(pair, settings), 2), tmp_path / "r2")
    trend = json.loads(paths["json"].read_text())["since_last_run"]
    assert trend["previous_run_id"] == "r1", "compared with another target's run"
    assert trend["previous_verdict"] == "GO"
    assert [entry["id"] for entry in trend["new_failures"]] == [COUNT]
    [moved] = trend["changed"]
    assert moved["id"] == COUNT and moved["delta"] == -1
    html = paths["html"].read_text()
    assert "New failures (1)" in html and "Numbers that moved (1)" in html

    execute(pair.target, "INSERT INTO vector_embeddings VALUES (%s, %s, %s, %s, %s, %s)", row)
    later = write_report(report("r3", row_counts.check(pair, settings), 3), tmp_path / "r3")
    trend = json.loads(later["json"].read_text())["since_last_run"]
    assert trend["previous_run_id"] == "r2"
    assert [entry["id"] for entry in trend["fixed"]] == [COUNT]
    assert trend["new_failures"] == []


def test_first_run_of_a_target_has_no_comparison(pair, settings, tmp_path):
    paths = write_report(report("only", row_counts.check(pair, settings)), tmp_path / "only")
    assert json.loads(paths["json"].read_text())["since_last_run"] is None
    assert "No earlier run of this target" in paths["html"].read_text()


def test_a_malformed_chart_is_a_note_not_a_broken_report(pair, settings, tmp_path):
    [first, *rest] = row_counts.check(pair, settings)
    broken = replace(
        first,
        details={"series": {"x": [1, 2], "lines": {"target": ["fast", None]}}},
    )
    html = write_report(report("bad-chart", [broken, *rest]), tmp_path / "bad")["html"]
    text = html.read_text()
    assert "series chart not drawn" in text and "not a number" in text
    assert f"id='check-{first.id}'" in text, "the check itself is still listed"
