"""Write reports/<run_id>/signoff.json and signoff.html, and mirror them to reports/latest/."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from pgcutover.report.compare import LATEST, compare, previous_signoff
from pgcutover.report.html import render
from pgcutover.report.model import RunReport

#: Characters kept from a target's name in its report folder's name.
SLUG_LENGTH = 40


def slug(name: str) -> str:
    """A name as one safe folder name: letters, digits, `_` and `-` only, so a `/` or `..`
    in a target's name can never nest a run's folder or leave reports/."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:SLUG_LENGTH].strip("-")
    return text or "unnamed"


def write_report(report: RunReport, run_dir: Path) -> dict[str, Path]:
    """Write the sign-off files, compared with the previous run of the same target found
    beside run_dir; returns their paths."""
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = previous_signoff(run_dir.parent, report.run_id, str(report.target.get("label")))
    report.since_last_run = compare(previous, report.to_json()) if previous else None
    document = json.dumps(report.to_json(), indent=2, default=str).encode()
    json_path = run_dir / "signoff.json"
    json_path.write_bytes(document)
    digest = hashlib.sha256(document).hexdigest()
    html_path = run_dir / "signoff.html"
    html_path.write_text(render(report, digest), encoding="utf-8")
    return {"json": json_path, "html": html_path}


def latest_verdict(reports_dir: Path) -> str | None:
    """The verdict in reports/latest, if there is a readable one."""
    path = reports_dir / LATEST / "signoff.json"
    try:
        return str(json.loads(path.read_text())["verdict"])
    except (OSError, ValueError, KeyError):
        return None


def mirror_latest(run_dir: Path) -> Path:
    """Copy the run's folder to reports/latest (a copy, not a link: CI artefact uploads
    and Windows shares both handle plain folders)."""
    latest = run_dir.parent / LATEST
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.exists():
        shutil.rmtree(latest)
    shutil.copytree(run_dir, latest)
    return latest
