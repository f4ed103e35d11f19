"""signoff.html: one self-contained page a person can decide on in a minute and dig into in
two. No scripts and nothing fetched: charts are inline SVG, evidence sits in <details>."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.cutover import downtime_line, rollback_line
from pgcutover.progress import duration
from pgcutover.report.charts import CHART_KEYS, charts_for, migration_timeline
from pgcutover.report.model import RunReport

#: Values longer than this (as text) fold into a <details> element.
FOLD_AT = 120

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1120px;padding:0 1rem;
 color:#1f2328} h1{margin:0 0 .4rem} h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de}
h3{margin:1.4rem 0 .3rem} .verdict{display:inline-block;padding:.3rem 1.1rem;border-radius:6px;
 font-weight:700;font-size:1.8rem;color:#fff} .GO{background:#1a7f37} .NO-GO{background:#cf222e}
.lead{font-size:1.05rem;margin:.6rem 0} table{border-collapse:collapse;width:100%;margin:.5rem 0}
td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{white-space:nowrap} td{overflow-wrap:anywhere}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:700;text-transform:uppercase;font-size:.8rem;white-space:nowrap}
.pass{color:#1a7f37}.fail{color:#cf222e}.unknown{color:#9a6700}.skip{color:#57606a}
tr.pass,tr.skip{color:inherit}
tr.fail>td,tr.unknown>td{background:#fff5f5} code,pre{font-size:.85em}
pre{white-space:pre-wrap;word-break:break-word;margin:.2rem 0} .remedy{color:#0550ae}
.blocking li{margin:.4rem 0} summary{cursor:pointer;color:#0550ae}
.pictures{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:.8rem}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:.5rem}
svg.chart{max-width:100%;height:auto}
figcaption{font-size:.85rem;color:#57606a} .chart-error{color:#9a6700}
.sign{border:2px dashed #57606a;padding:1rem 1.2rem;margin-top:2rem}
.sign input{font:inherit;border:0;border-bottom:1px solid #1f2328;min-width:16rem}
.muted{color:#57606a}
"""


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=str, indent=indent, ensure_ascii=False)


def _value(value: Any) -> str:
    """A cell value: text as text, anything else as JSON; long values fold away."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = value if isinstance(value, str) else _json(value)
    if len(text) <= FOLD_AT:
        return escape(text) if isinstance(value, str) else f"<code>{escape(text)}</code>"
    full = value if isinstance(value, str) else _json(value, indent=2)
    return f"<details><summary>{escape(text[:60])}…</summary><pre>{escape(full)}</pre></details>"


def _size(size: Any) -> str:
    if not isinstance(size, int | float):
        return ""
    unit = "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def _duration(seconds: float | None) -> str:
    return "unknown" if seconds is None else duration(seconds)


def _anchor(check_id: str) -> str:
    return "check-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in check_id)


def _verdict_line(report: RunReport) -> str:
    counts = report.counts()
    if not report.complete:
        return incomplete_line(report)
    if not report.checks:
        return "No check ran, so nothing can be approved."
    if report.verdict == "GO":
        skipped = f" ({counts['skip']} skipped)" if counts["skip"] else ""
        return f"All {counts['pass']} checks passed{skipped}."
    parts = []
    if counts["fail"]:
        parts.append(f"{counts['fail']} check{'s' * (counts['fail'] != 1)} failed")
    if counts["unknown"]:
        parts.append(f"{counts['unknown']} could not run")
    return (
        f"{' and '.join(parts)}; {counts['pass']} passed. "
        "Do not cut over until the blocking checks below pass."
    )


def incomplete_line(report: RunReport) -> str:
    """Why an incomplete run is not a sign-off, whatever its checks say."""
    missing = report.completeness["missing"]
    reasons = []
    if report.completeness["interrupted"]:
        reasons.append("the run was interrupted")
    if missing:
        reasons.append(f"these check families did not report: {', '.join(missing)}")
    return (
        f"Not a sign-off: {'; '.join(reasons)}. GO needs every check family to run to the end; "
        "run `pytest suites/` without -k/-m filters and let it finish."
    )


def _pgvector(side: Mapping[str, Any]) -> str:
    return str((side.get("extensions") or {}).get("vector", "not installed"))


def _facts(report: RunReport) -> str:
    """What was compared: one column per side."""

    def row(name: str, source: str, target: str) -> str:
        return f"<tr><th>{name}</th><td>{source}</td><td>{target}</td></tr>"

    sides = (report.source, report.target)
    rows = [
        row("label", *(escape(str(side.get("label", ""))) for side in sides)),
        row("PostgreSQL", *(escape(str(side.get("server_version", ""))) for side in sides)),
        row("pgvector", *(escape(_pgvector(side)) for side in sides)),
        row("database size", *(_size(side.get("database_size_bytes")) for side in sides)),
        row("connection", *(f"<code>{escape(str(side.get('dsn', '')))}</code>" for side in sides)),
        row("extensions", *(_value(side.get("extensions")) for side in sides)),
    ]
    if any("error" in side for side in sides):
        rows.append(row("error", *(_value(side.get("error")) for side in sides)))
    relation = report.relation or {}
    shared = (
        f"<p id='relation'>The two sides share one server ({escape(str(relation['evidence']))})"
        ": the migration left the server's roles and their settings as they were.</p>"
        if relation.get("shared_server")
        else ""
    )
    return (
        "<table id='compared'><tr><th></th><th>source</th><th>target</th></tr>"
        f"{''.join(rows)}</table>{shared}"
    )


def _run_line(report: RunReport, digest: str) -> str:
    seed = report.seed or {}
    rows = f", {seed['chunks']} seeded chunks" if "chunks" in seed else ""
    strategy = report.migration.get("strategy", "none")
    by = escape(report.signoff_by) if report.signoff_by else "not named (use --signoff-by)"
    mode = f"<br>What ran: <b id='mode'>{escape(report.mode)}</b>." if report.mode else ""
    window = report.migration.get("window")
    planned = (
        f"; projected cutover window <a href='#cutover-window'>{_window_span(window)}</a>"
        if window
        else ""
    )
    return (
        f"<p>Run <code>{escape(report.run_id)}</code>: {escape(report.started_at)} to "
        f"{escape(report.finished_at)}, took <b>{_duration(report.duration_seconds)}</b>; "
        f"migration strategy <b>{escape(strategy)}</b>{rows}{planned}.{mode}<br>To be signed by: "
        f"<b id='signoff-by'>{by}</b>. signoff.json sha256 <code id='digest'>{escape(digest)}"
        "</code></p>"
    )


def _blocking(report: RunReport) -> str:
    blocking = [c for c in report.ordered_checks() if c.status in ("fail", "unknown")]
    if not blocking:
        return ""
    items = "".join(
        f"<li><span class='status {c.status}'>{c.status}</span> "
        f"<a href='#{_anchor(c.id)}'><code>{escape(c.id)}</code></a>: {escape(c.message)}"
        + (f"<div class='remedy'>fix: {escape(c.remedy)}</div>" if c.remedy else "")
        + "</li>"
        for c in blocking
    )
    return f"<h2 id='blocking'>Blocking checks</h2><ol class='blocking'>{items}</ol>"


def _findings(report: RunReport) -> str:
    """Advice that does not block: what both sides lack, readiness, harmless differences."""
    found = [c for c in report.ordered_checks() if c.details.get("finding") and c.status == "pass"]
    if not found:
        return ""
    items = "".join(
        f"<li><b>{escape(str(c.details['finding']))}</b> "
        f"<a href='#{_anchor(c.id)}'><code>{escape(c.id)}</code></a>: {escape(c.message)}"
        + (f"<div class='remedy'>advice: {escape(c.remedy)}</div>" if c.remedy else "")
        + "</li>"
        for c in found
    )
    return (
        "<h2 id='findings'>Findings (not blocking)</h2><p class='muted'>What the source lacks "
        "too, the guide's readiness demands (set [inventory] readiness_blocking = true to make "
        f"them block), and differences that change nothing the app sees.</p><ul>{items}</ul>"
    )


def _list(values: Any) -> str:
    return (
        escape(", ".join(str(v) for v in values)) if values else "<span class='muted'>none</span>"
    )


def _inventory(inventory: Mapping[str, Any] | None) -> str:
    """What pgcutover found in the source, as every check read it."""
    if not inventory:
        return "<p class='muted'>The source's inventory was not read (see the blocking checks).</p>"
    tables = inventory["tables"]
    keyless = [f"{t['schema']}.{t['name']}" for t in tables if not t["primary_key"]]
    rls = [f"{t['schema']}.{t['name']}" for t in tables if t["rls"]]
    vectors = "".join(
        f"<tr><td><code>{escape(v['schema'])}.{escape(v['table'])}.{escape(v['column'])}</code>"
        f"</td><td>{escape(v['type_name'])}({v['dimensions'] or '?'})</td>"
        f"<td>{'the app' if v['app'] else 'other'}</td><td>{escape(str(v['model'] or ''))}</td>"
        f"<td>{escape(str(v['text_column'] or ''))} <span class='muted'>"
        f"{escape(v['text_column_from'])}</span></td></tr>"
        for v in inventory["vectors"]
        if not v["partition"]
    )
    indexes = [
        f"{i['name']} ({i['method']} {i['opclass']}"
        + (f" {', '.join(i['options'])}" if i["options"] else "")
        + ")"
        for i in inventory["ann_indexes"]
    ]
    texts = [f"{i['name']} ({i['kind']})" for i in inventory["text_indexes"]]
    filters = [
        f"{f['schema']}.{f['table']}.{f['column']} ({', '.join(f['reasons'])})"
        for f in inventory["filters"]
    ]
    settings = [
        f"{s['scope']}{' ' + s['role'] if s['role'] else ''}: {s['name']}={s['value']}"
        for s in inventory["settings"]
    ]
    shapes = [s["name"] for s in inventory["shapes"]] + [
        s["name"] for s in (*inventory["text_shapes"], *inventory["lookups"])
    ]
    notes = "".join(f"<li class='remedy'>{escape(n)}</li>" for n in inventory["notes"])
    return (
        f"<p>Database <code>{escape(inventory['database'])}</code>: {len(tables)} tables in "
        f"schemas {_list(inventory['schemas'])}.</p>"
        "<table id='inventory-vectors'><tr><th>vector column</th><th>type</th><th>judged as</th>"
        f"<th>model</th><th>text column</th></tr>{vectors}</table>"
        "<table id='inventory'>"
        f"<tr><th>vector indexes</th><td>{_list(indexes)}</td></tr>"
        f"<tr><th>text-search indexes</th><td>{_list(texts)}</td></tr>"
        f"<tr><th>filter columns</th><td>{_list(filters)}</td></tr>"
        f"<tr><th>query shapes</th><td>{_list(shapes)}</td></tr>"
        f"<tr><th>database and role settings</th><td>{_list(settings)}</td></tr>"
        f"<tr><th>tables without a primary key</th><td>{_list(keyless)}</td></tr>"
        f"<tr><th>row-level security</th><td>{_list(rls)}</td></tr></table>"
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def _since_last_run(comparison: Mapping[str, Any] | None) -> str:
    if not comparison:
        return (
            "<h2 id='since-last-run'>Since last run</h2>"
            "<p class='muted'>No earlier run of this target in the reports folder.</p>"
        )
    parts = [
        f"<p>Previous run <code>{escape(str(comparison['previous_run_id']))}</code> "
        f"({escape(str(comparison.get('previous_started_at', '')))}) was "
        f"<b>{escape(str(comparison['previous_verdict']))}</b>.</p>"
    ]
    lists = (
        ("New failures", comparison["new_failures"], "fail"),
        ("Fixed since then", comparison["fixed"], "pass"),
    )
    for title, entries, status in lists:
        if entries:
            items = "".join(
                f"<li><code>{escape(e['id'])}</code>: {escape(e.get('message', ''))}</li>"
                for e in entries
            )
            parts.append(f"<h3 class='{status}'>{title} ({len(entries)})</h3><ul>{items}</ul>")
    if comparison["changed"]:
        rows = "".join(
            f"<tr><td><code>{escape(c['id'])}</code></td><td class='num'>{c['before']:.6g}</td>"
            f"<td class='num'>{c['after']:.6g}</td><td class='num'>{c['delta']:+.6g}</td>"
            f"<td class='num'>"
            f"{'' if c['relative'] is None else format(c['relative'], '+.1%')}</td></tr>"
            for c in comparison["changed"]
        )
        table = (
            "<table><tr><th>check</th><th>before</th><th>after</th><th>change</th><th>%</th></tr>"
            f"{rows}</table>"
        )
        parts.append(
            f"<details {'open' if len(comparison['changed']) <= 15 else ''}><summary>Numbers that "
            f"moved ({len(comparison['changed'])})</summary>{table}</details>"
        )
    for key, title in (("new_checks", "Checks new in this run"), ("removed_checks", "Gone")):
        if comparison[key]:
            parts.append(f"<p class='muted'>{title}: {_value(comparison[key])}</p>")
    if len(parts) == 1:
        parts.append("<p>Nothing changed: same statuses, same numbers.</p>")
    return f"<h2 id='since-last-run'>Since last run</h2>{''.join(parts)}"


def _integrity(report: RunReport) -> str:
    rows = []
    for check in sorted(report.checks, key=lambda c: c.id):
        if not check.id.startswith("row_counts."):
            continue
        difference = ""
        if isinstance(check.expected, int) and isinstance(check.actual, int):
            difference = f"{check.actual - check.expected:+d}"
        rows.append(
            f"<tr class='{check.status}'><td>{escape(check.id.removeprefix('row_counts.'))}</td>"
            f"<td class='num'>{_value(check.expected)}</td><td class='num'>"
            f"{_value(check.actual)}</td><td class='num'>{difference}</td>"
            f"<td class='status {check.status}'>{check.status}</td></tr>"
        )
    if not rows:
        return "<p class='muted'>The row-count check did not run.</p>"
    return (
        "<table id='integrity'><tr><th>table</th><th>source rows</th><th>target rows</th>"
        f"<th>difference</th><th>status</th></tr>{''.join(rows)}</table>"
    )


def _cutover(migration: Mapping[str, Any]) -> str:
    """The logical strategy's headline: what the switchover cost against a dump/restore, the
    way back, and what was left on the source (nothing)."""
    evidence = migration.get("logical")
    if not evidence:
        return ""
    downtime, proof = evidence.get("downtime") or {}, evidence.get("rollback") or {}
    lag, clean = evidence.get("lag") or {}, evidence.get("clean_up") or {}
    rows = [
        (
            "downtime",
            downtime_line(downtime)
            if downtime.get("write_pause_seconds") is not None
            else "the switchover was not reached",
        ),
        ("way back", rollback_line(proof) if proof else "not reached"),
        (
            "lag",
            f"peak {lag.get('max_bytes')} bytes and {lag.get('max_seconds')} s behind, "
            f"{lag.get('readings')} readings ({lag.get('unanswered')} unanswered)",
        ),
        (
            "source",
            f"publication and slot removed: {', '.join(clean.get('removed', [])) or 'none'}"
            + (f"; NOT removed: {'; '.join(clean['failed'])}" if clean.get("failed") else ""),
        ),
    ]
    cells = "".join(f"<tr><th>{name}</th><td>{escape(text)}</td></tr>" for name, text in rows)
    return f"<h2 id='cutover'>Cutover</h2><table id='cutover-summary'>{cells}</table>"


def _pictures(report: RunReport) -> str:
    figures = []
    timeline = migration_timeline(report.migration)
    if timeline:
        figures.append(
            f"<figure id='chart-migration'>{timeline}<figcaption>From the migration block "
            "of signoff.json.</figcaption></figure>"
        )
    for check in report.ordered_checks():
        for number, chart in enumerate(charts_for(check.details)):
            figures.append(
                f"<figure id='chart-{_anchor(check.id)}-{number}'>{chart}<figcaption>"
                f"<a href='#{_anchor(check.id)}'>{escape(check.id)}</a> "
                f"(<span class='{check.status}'>{check.status}</span>)</figcaption></figure>"
            )
    if not figures:
        return "<p class='muted'>No check of this run produced a chart.</p>"
    return f"<div class='pictures'>{''.join(figures)}</div>"


def _evidence(check: CheckResult) -> str:
    extra = {k: v for k, v in check.details.items() if k not in CHART_KEYS}
    charts = [k for k in CHART_KEYS if k in check.details]
    parts = []
    if charts:
        parts.append(f"<a href='#chart-{_anchor(check.id)}-0'>chart</a>")
    if extra:
        parts.append(
            f"<details><summary>evidence</summary><pre>{escape(_json(extra, indent=2))}</pre>"
            "</details>"
        )
    return "".join(parts)


def _check_rows(checks: list[CheckResult]) -> str:
    rows = []
    for check in checks:
        remedy = f"<div class='remedy'>fix: {escape(check.remedy)}</div>" if check.remedy else ""
        rows.append(
            f"<tr class='{check.status}' id='{_anchor(check.id)}'>"
            f"<td class='status {check.status}'>{check.status}</td>"
            f"<td><code>{escape(check.id)}</code></td>"
            f"<td>{escape(check.message)}{remedy}{_evidence(check)}</td>"
            f"<td>{_value(check.expected)}</td><td>{_value(check.actual)}</td>"
            f"<td>{_value(check.threshold)}</td></tr>"
        )
    return "".join(rows)


def _areas(report: RunReport) -> str:
    sections = []
    for area, checks in report.by_area().items():
        totals: dict[str, int] = {}
        for check in checks:
            totals[check.status] = totals.get(check.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in totals.items())
        sections.append(
            f"<section class='area' id='area-{escape(area)}'><h3>{escape(area)} "
            f"<span class='muted'>({summary})</span></h3><table><tr><th>status</th>"
            "<th>check</th><th>finding</th><th>expected</th><th>actual</th><th>threshold</th>"
            f"</tr>{_check_rows(checks)}</table></section>"
        )
    return "".join(sections) or "<p class='fail'>No check ran.</p>"


def _migration(migration: Mapping[str, Any]) -> str:
    if not migration.get("performed"):
        notes = "; ".join(migration.get("notes", []))
        return f"<p>Not performed: {escape(notes)}</p>"
    phases = "".join(
        f"<tr class='{'pass' if p['ok'] else 'fail'}'><td>{escape(p['name'])}</td>"
        f"<td class='num'>{p['seconds']:.2f}</td><td>{_value(p.get('detail') or None)}</td></tr>"
        for p in migration.get("phases", [])
    )
    parts = [
        f"<p>Strategy <b>{escape(str(migration.get('strategy')))}</b> with "
        f"{escape(str(migration.get('client_tools', '')))}; snapshot "
        f"<code>{escape(str(migration.get('snapshot')))}</code>; roles created: "
        f"{escape(', '.join(migration.get('roles_created', [])) or 'none')}.</p>",
        f"<table><tr><th>phase</th><th>seconds</th><th>detail</th></tr>{phases}</table>",
    ]
    if migration.get("error"):
        parts.append(
            f"<p class='fail'><b>Failed in {escape(str(migration.get('failed_phase')))}:</b></p>"
            f"<pre>{escape(str(migration['error']))}</pre>"
            f"<p class='remedy'>fix: {escape(str(migration.get('remedy')))}</p>"
        )
    for line in migration.get("advice", []) + migration.get("notes", []):
        parts.append(f"<p class='remedy'>{escape(line)}</p>")
    parts.append(_window(migration))
    return "".join(parts)


def _window_span(window: Mapping[str, Any]) -> str:
    """'about 23 min (18 min 10 s to 29 min)'."""
    return (
        f"about {_duration(window['projected_seconds'])} ({_duration(window['low_seconds'])} "
        f"to {_duration(window['high_seconds'])})"
    )


def _window(migration: Mapping[str, Any]) -> str:
    """The guide's "Plan downtime": the cutover window projected to production size."""
    window = migration.get("window")
    if not window:
        return ""
    size = window["production"]
    rows = "".join(
        f"<tr><td>{escape(p['name'])}</td><td class='num'>{p['measured_seconds']:.1f}</td>"
        f"<td>{escape(p['grows_with'])}</td><td class='num'>x {p['factor']:g}</td>"
        f"<td class='num'>{p['projected_seconds']:.1f}</td></tr>"
        for p in window["phases"]
    )
    assumptions = "".join(f"<li>{escape(line)}</li>" for line in window["assumptions"])
    return (
        "<h3 id='cutover-window'>Cutover window (projected)</h3>"
        f"<p>Planned for {escape(window['basis'])}: {size['rows']:,} rows, "
        f"{_size(size['table_bytes'])} of tables, {size['vectors']:,} vectors. The migration "
        f"would take <b>{_window_span(window)}</b>, ±{window['uncertainty']:.0%}; this "
        f"rehearsal measured {_duration(window['measured_seconds'])} for "
        f"{window['rehearsal']['rows']:,} rows.</p>"
        "<table><tr><th>phase</th><th>measured s</th><th>grows with</th><th>factor</th>"
        f"<th>projected s</th></tr>{rows}</table>"
        f"<p>Assuming:</p><ul class='assumptions'>{assumptions}</ul>"
    )


def _artefacts(report: RunReport) -> str:
    if not report.artefacts:
        return "<p class='muted'>No other report was stored with this run.</p>"
    items = "".join(
        f"<li><a href='{escape(path)}'>{escape(label)}</a> <span class='muted'>"
        f"({escape(path)})</span></li>"
        for label, path in sorted(report.artefacts.items())
    )
    return f"<ul id='artefacts'>{items}</ul>"


def _approval(report: RunReport, digest: str) -> str:
    who = escape(report.signoff_by) if report.signoff_by else "________________"
    return (
        "<div class='sign' id='approval'><b>Approval.</b> "
        f"To be approved by {who}. I have read this report and decide: <b>GO / NO-GO</b>"
        "<p>Approver: <input id='approver' name='approver' aria-label='approver'> "
        "Date: <input name='date' aria-label='date' style='min-width:8rem'></p>"
        "<p>Signature: ______________________________</p>"
        f"<p class='muted'>This approval refers to run <code>{escape(report.run_id)}</code>, "
        f"signoff.json sha256 <code>{escape(digest)}</code>.</p></div>"
    )


def render(report: RunReport, digest: str) -> str:
    """The whole page; `digest` is the sha256 of signoff.json, so a signed copy matches."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>pgcutover sign-off {escape(report.run_id)}: {report.verdict}</title>
<style>{STYLE}</style></head><body>
<h1>Migration sign-off</h1>
<p><span class="verdict {report.verdict}" id="verdict">{report.verdict}</span></p>
<p class="lead" id="verdict-reason">{escape(_verdict_line(report))}</p>
{_run_line(report, digest)}
<h2>What was compared</h2>{_facts(report)}
{_cutover(report.migration)}
{_blocking(report)}
{_findings(report)}
<h2 id="found">What pgcutover found in the source</h2>{_inventory(report.inventory)}
{_since_last_run(report.since_last_run)}
<h2 id="integrity-heading">Data integrity (row counts, source vs target)</h2>{_integrity(report)}
<h2 id="pictures">Pictures</h2>{_pictures(report)}
<h2 id="checks">Checks by area</h2>{_areas(report)}
<h2 id="migration">Migration</h2>{_migration(report.migration)}
<h2 id="reports">Reports of this run</h2>{_artefacts(report)}
{_approval(report, digest)}
</body></html>
"""
