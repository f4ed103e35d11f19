"""signoff.html: one self-contained page a person can read in a minute and sign."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from pgcutover.report.model import RunReport

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232a}
h1{margin:0 0 .3rem} h2{margin-top:2rem;border-bottom:1px solid #d0d7de}
.verdict{display:inline-block;padding:.35rem 1rem;border-radius:6px;font-weight:700;
 font-size:1.6rem;color:#fff} .GO{background:#1a7f37} .NO-GO{background:#cf222e}
table{border-collapse:collapse;width:100%;margin:.5rem 0} td,th{border:1px solid #d0d7de;
 padding:.3rem .5rem;text-align:left;vertical-align:top} th{background:#f6f8fa}
.status{font-weight:700;text-transform:uppercase;font-size:.8rem}
.pass{color:#1a7f37}.fail{color:#cf222e}.unknown{color:#9a6700}.skip{color:#57606a}
tr.fail td,tr.unknown td{background:#fff5f5} code,pre{font-size:.85em}
pre{white-space:pre-wrap;margin:0} .remedy{color:#0550ae}
.sign{border:2px dashed #57606a;padding:1rem;margin-top:2rem}
"""


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return escape(value)
    return f"<code>{escape(json.dumps(value, default=str))}</code>"


def _environment_rows(report: RunReport) -> str:
    rows = []
    for key in ("label", "server_version", "dsn", "database_size_bytes"):
        rows.append(
            f"<tr><th>{escape(key)}</th><td>{_value(report.source.get(key))}</td>"
            f"<td>{_value(report.target.get(key))}</td></tr>"
        )
    rows.append(
        f"<tr><th>extensions</th><td>{_value(report.source.get('extensions'))}</td>"
        f"<td>{_value(report.target.get('extensions'))}</td></tr>"
    )
    return "".join(rows)


def _integrity_rows(report: RunReport) -> str:
    rows = []
    for check in sorted(report.checks, key=lambda c: c.id):
        if check.id.startswith("row_counts."):
            rows.append(
                f"<tr class='{check.status}'><td>{escape(check.id.removeprefix('row_counts.'))}"
                f"</td><td>{_value(check.expected)}</td><td>{_value(check.actual)}</td>"
                f"<td class='status {check.status}'>{check.status}</td></tr>"
            )
    return "".join(rows)


def _migration_section(migration: dict[str, Any]) -> str:
    if not migration.get("performed"):
        notes = "; ".join(migration.get("notes", []))
        return f"<p>Not performed: {escape(notes)}</p>"
    phases = "".join(
        f"<tr class='{'pass' if p['ok'] else 'fail'}'><td>{escape(p['name'])}</td>"
        f"<td>{p['seconds']:.2f}</td><td>{escape(p.get('detail', ''))}</td></tr>"
        for p in migration.get("phases", [])
    )
    parts = [
        f"<p>Strategy <b>{escape(migration['strategy'])}</b> with "
        f"{escape(migration.get('client_tools', ''))}; "
        f"snapshot <code>{escape(str(migration.get('snapshot')))}</code>.</p>",
        f"<table><tr><th>phase</th><th>seconds</th><th>detail</th></tr>{phases}</table>",
    ]
    if migration.get("error"):
        parts.append(
            f"<p class='fail'><b>Failed in {escape(str(migration['failed_phase']))}"
            f":</b> <pre>{escape(migration['error'])}</pre></p>"
            f"<p class='remedy'>fix: {escape(str(migration.get('remedy')))}</p>"
        )
    for line in migration.get("advice", []) + migration.get("notes", []):
        parts.append(f"<p class='remedy'>{escape(line)}</p>")
    return "".join(parts)


def _check_rows(report: RunReport) -> str:
    rows = []
    for check in report.ordered_checks():
        remedy = f"<div class='remedy'>fix: {escape(check.remedy)}</div>" if check.remedy else ""
        rows.append(
            f"<tr class='{check.status}'><td class='status {check.status}'>{check.status}</td>"
            f"<td>{escape(check.area)}</td><td><code>{escape(check.id)}</code></td>"
            f"<td>{escape(check.message)}{remedy}</td><td>{_value(check.expected)}</td>"
            f"<td>{_value(check.actual)}</td><td>{_value(check.threshold)}</td></tr>"
        )
    return "".join(rows)


def render(report: RunReport, digest: str) -> str:
    """The whole page; `digest` is the sha256 of signoff.json, so a signed copy matches."""
    counts = report.counts()
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    artefacts = "".join(
        f"<li><a href='{escape(path)}'>{escape(name)}</a></li>"
        for name, path in sorted(report.artefacts.items())
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pgcutover sign-off {escape(report.run_id)}
</title><style>{STYLE}</style></head><body>
<h1>Migration sign-off</h1>
<p><span class="verdict {report.verdict}" id="verdict">{report.verdict}</span>
&nbsp; {escape(summary)}</p>
<p>Run <code>{escape(report.run_id)}</code>, {escape(report.started_at)} to
{escape(report.finished_at)}. signoff.json sha256 <code>{escape(digest)}</code></p>
<h2>What was compared</h2>
<table><tr><th></th><th>source</th><th>target</th></tr>{_environment_rows(report)}</table>
<h2>Data integrity (row counts)</h2>
<table><tr><th>table</th><th>source</th><th>target</th><th>status</th></tr>
{_integrity_rows(report)}</table>
<h2>Migration</h2>{_migration_section(report.migration)}
<h2>Checks</h2>
<table><tr><th>status</th><th>area</th><th>check</th><th>finding</th><th>expected</th>
<th>actual</th><th>threshold</th></tr>{_check_rows(report)}</table>
<h2>Artefacts</h2><ul>{artefacts}</ul>
<div class="sign"><b>Approval.</b> Reviewed by: ____________________ &nbsp;
Date: ____________ &nbsp; Decision: GO / NO-GO</div>
</body></html>
"""
