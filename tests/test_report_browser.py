"""The sign-off in a real browser: headless Chromium opens signoff.html offline, built from real
check results on the test databases, and we read back what it rendered.

Chromium prints the DOM after rendering (--dump-dom); a copy of the page carries a small
probe script that writes each chart's rendered size and its drawn marks into the DOM. A
screenshot of the real page is kept in the test's tmp folder.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import execute
from pgcutover import expectations
from pgcutover.checks import connectivity, row_counts, vector_indexes, vectors
from pgcutover.checks import migration as migration_check
from pgcutover.checks.search import latency, recall
from pgcutover.environment import describe
from pgcutover.report.model import RunReport
from pgcutover.report.writer import write_report

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="chromium is not installed (scripts/bootstrap --browser installs it)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # any network name fails to resolve: the page must render from the file alone
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
PROBE = """<script>
addEventListener('load', () => {
  for (const svg of document.querySelectorAll('svg.chart')) {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('polyline.line, rect.bar, .span')]
      .filter(m => { const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
    svg.setAttribute('data-rendered', `${Math.round(box.width)}x${Math.round(box.height)}`);
    svg.setAttribute('data-marks', marks.length);
  }
  const page = document.documentElement;
  document.body.setAttribute('data-overflow', page.scrollWidth - page.clientWidth);
  document.body.setAttribute('data-probed', 'yes');
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; returns stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    result = subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", *args],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rendered_dom(html: Path, tmp_path: Path) -> str:
    """The DOM after Chromium rendered a probed copy of the page."""
    probe = html.with_name("probe.html")
    probe.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert 'data-probed="yes"' in dom, "the probe did not run: the page did not finish loading"
    assert 'data-overflow="0"' in dom, "the page is wider than the window"
    return dom


def screenshot(html: Path, tmp_path: Path) -> Path:
    """A full-height screenshot of the real page, kept as the test's artefact."""
    png = tmp_path / f"{html.parent.name}.png"
    chromium(tmp_path, "--window-size=1280,2600", f"--screenshot={png}", html.as_uri())
    assert png.stat().st_size > 20_000, "the screenshot is suspiciously small"
    return png


def colour_share(png: Path, colour: str) -> float:
    """Fraction of the screenshot's pixels painted in one exact colour (e.g. the verdict's)."""
    from PIL import Image

    wanted = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        counts = {colour: count for count, colour in rgb.getcolors(maxcolors=1 << 24)}
        return counts.get(wanted, 0) / (rgb.width * rgb.height)


class Page(HTMLParser):
    """What the assertions need from the rendered DOM, in document order."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.charts: list[dict[str, str]] = []
        self.rows: list[tuple[str, str, str]] = []  # (area section, row id, status)
        self.order: list[str] = []  # ids of headings and sections as they appear
        self._area = ""
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "svg" and "chart" in values.get("class", ""):
            self.charts.append(values)
        if values.get("id"):
            self.order.append(values["id"])
        if tag == "section" and values.get("id", "").startswith("area-"):
            self._area = values["id"]
        if tag == "tr" and values.get("id", "").startswith("check-"):
            self.rows.append((self._area, values["id"], values.get("class", "")))


def make_report(pair, migration, checks, run_id: str, tmp_path: Path) -> Path:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    report = RunReport(
        run_id=run_id,
        started_at=now,
        finished_at=now,
        source=describe(pair.source, "source"),
        target=describe(pair.target, "target"),
        migration=migration.to_json(),
        checks=checks,
        signoff_by="Ada Approver",
    )
    return write_report(report, tmp_path / "reports" / run_id)["html"]


def offline_only(html: Path) -> None:
    """Nothing in the page could fetch: no scripts, stylesheets, images or remote URLs."""
    text = html.read_text()
    assert not re.search(r"<script|<link|<img|<iframe|\ssrc=|url\(", text, re.IGNORECASE)
    assert not re.search(r"href=['\"]https?:", text)


@pytest.mark.slow
def test_go_report_renders_verdict_and_charts_offline(pair, settings, migrated, tmp_path):
    checks = [
        *connectivity.check(pair, settings),
        *row_counts.check(pair, settings),
        *vectors.check(pair, settings),
        *vector_indexes.check(pair, settings),
        *recall.check(pair, settings),
        *latency.check(pair, settings),
        *migration_check.drift(migrated[1]),
        *expectations.check(pair, settings),
    ]
    html = make_report(pair, migrated[1], checks, "browser-go", tmp_path)
    offline_only(html)
    dom = rendered_dom(html, tmp_path)
    assert re.search(r'id="verdict"[^>]*>GO<', dom)
    assert "Ada Approver" in dom
    page = Page(dom)
    kinds = {chart["data-kind"] for chart in page.charts}
    assert {"timeline", "line", "bars"} <= kinds, kinds
    for chart in page.charts:
        width, height = (int(n) for n in chart["data-rendered"].split("x"))
        assert width >= 300 and height >= 120, chart
        assert int(chart["data-marks"]) > 0, f"an empty chart: {chart}"
    png = screenshot(html, tmp_path)
    assert colour_share(png, "#1a7f37") > 0.0005, "the green GO badge was not painted"
    assert colour_share(png, "#0969da") > 0.001, "no target-coloured chart marks were painted"
    print(f"screenshot: {png}")


def test_no_go_report_puts_failures_and_remedies_first(pair, settings, migrated, tmp_path):
    execute(
        pair.target,
        "DELETE FROM vector_embeddings WHERE id = (SELECT min(id) FROM vector_embeddings)",
    )
    execute(pair.target, "DROP INDEX idx_embedding_hnsw")
    checks = [
        *connectivity.check(pair, settings),
        *row_counts.check(pair, settings),
        *vector_indexes.check(pair, settings),
    ]
    failed = sorted(c.id for c in checks if c.status == "fail")
    assert failed == [
        "row_counts.public.vector_embeddings",
        "vector_index.public.idx_embedding_hnsw",
    ]
    html = make_report(pair, migrated[1], checks, "browser-no-go", tmp_path)
    offline_only(html)
    dom = rendered_dom(html, tmp_path)
    assert re.search(r'id="verdict"[^>]*>NO-GO<', dom)
    page = Page(dom)
    assert page.order.index("blocking") < page.order.index("integrity-heading")
    assert page.order.index("blocking") < page.order.index("checks")
    blocking = dom[dom.index('id="blocking"') : dom.index('id="since-last-run"')]
    for check in checks:
        if check.status == "fail":
            assert check.id in blocking
            assert f"fix: {escape(check.remedy, quote=False)}" in blocking
    assert "fail" in page.rows[0][2], f"the first check shown is not a failure: {page.rows[:3]}"
    for area in {area for area, _, _ in page.rows}:
        statuses = [status for a, _, status in page.rows if a == area]
        ranks = [0 if "fail" in status else 1 for status in statuses]
        assert ranks == sorted(ranks), f"a failure below a pass in {area}: {statuses}"
    png = screenshot(html, tmp_path)
    assert colour_share(png, "#cf222e") > 0.0005, "the red NO-GO badge was not painted"
    print(f"screenshot: {png}")
