"""Inline SVG charts for the sign-off, drawn by hand: no scripts, no fonts, no network.

Renders the charts contract that checks fill in `CheckResult.details`:
`series` (line chart), `bars` (grouped bars) and `timeline` (spans on named rows); `series`
and `bars` may also be lists of such charts.
A malformed spec becomes a short note in the page, never a broken report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

WIDTH = 660
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 44, 50
#: Source grey, target blue everywhere in the report; other series take the palette in order.
SIDE_COLOURS = {"source": "#8c959f", "target": "#0969da"}
PALETTE = ("#bf3989", "#1a7f37", "#bc4c00", "#8250df", "#9a6700", "#cf222e")
KIND_COLOURS = {
    "ok": "#0969da",
    "phase": "#0969da",
    "fault": "#cf222e",
    "failed": "#cf222e",
    "heal": "#1a7f37",
}
CHART_KEYS = ("series", "bars", "timeline")
#: A line chart labels every x value up to this many; beyond, round ticks on a numeric axis.
MAX_POINT_TICKS = 12


class ChartError(ValueError):
    """A chart spec that cannot be drawn; the message says which field is wrong."""


def _colours(names: Sequence[str], fixed: Mapping[str, str]) -> dict[str, str]:
    """A stable colour per name: fixed ones first, then the palette in order."""
    spare = iter(colour for colour in PALETTE if colour not in fixed.values())
    return {name: fixed.get(name) or next(spare, "#57606a") for name in names}


def _number(text: float) -> str:
    """Short tick labels: 0.95, 120, 1.5k, 2M."""
    magnitude = abs(text)
    if magnitude >= 1_000_000:
        return f"{text / 1_000_000:g}M"
    if magnitude >= 10_000:
        return f"{text / 1000:g}k"
    return f"{text:.4g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten)."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


class _Frame:
    """Maps data to pixels inside the plot area and draws axes, grid, title and legend."""

    def __init__(self, title: str, height: int, x_label: str = "", y_label: str = "") -> None:
        self.title, self.height = title, height
        self.x_label, self.y_label = x_label, y_label
        self.plot_width = WIDTH - LEFT - RIGHT
        self.plot_height = height - TOP - BOTTOM
        self.parts: list[str] = []

    def y_axis(self, low: float, high: float) -> Callable[[float], float]:
        ticks = nice_ticks(low, high)
        low, high = ticks[0], ticks[-1]

        def to_y(value: float) -> float:
            return TOP + self.plot_height * (1 - (value - low) / (high - low))

        for tick in ticks:
            y = to_y(tick)
            self.parts.append(
                f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y:.1f}' y2='{y:.1f}' "
                f"stroke='#d0d7de' stroke-width='1'/>"
                f"<text x='{LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>{_number(tick)}</text>"
            )
        return to_y

    def x_tick(self, x: float, label: str) -> None:
        bottom = TOP + self.plot_height
        self.parts.append(
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{bottom}' y2='{bottom + 4}' stroke='#57606a'/>"
            f"<text x='{x:.1f}' y='{bottom + 17}' text-anchor='middle'>{escape(label)}</text>"
        )

    def legend(self, colours: Mapping[str, str]) -> None:
        x = LEFT
        for name, colour in colours.items():
            self.parts.append(
                f"<rect x='{x}' y='24' width='12' height='12' fill='{colour}'/>"
                f"<text x='{x + 16}' y='34'>{escape(name)}</text>"
            )
            x += 28 + 7 * len(name)

    def svg(self, kind: str) -> str:
        bottom = TOP + self.plot_height
        axes = (
            f"<line x1='{LEFT}' x2='{LEFT}' y1='{TOP}' y2='{bottom}' stroke='#57606a'/>"
            f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{bottom}' y2='{bottom}' "
            f"stroke='#57606a'/>"
        )
        labels = (
            f"<text x='{LEFT + self.plot_width / 2:.0f}' y='{self.height - 8}' "
            f"text-anchor='middle'>{escape(self.x_label)}</text>"
            f"<text transform='translate(14 {TOP + self.plot_height / 2:.0f}) rotate(-90)' "
            f"text-anchor='middle'>{escape(self.y_label)}</text>"
        )
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' data-kind='{kind}' "
            f"role='img' viewBox='0 0 {WIDTH} {self.height}' width='{WIDTH}' "
            f"height='{self.height}' font-family='sans-serif' font-size='11' fill='#1f2328'>"
            f"<title>{escape(self.title)}</title>"
            f"<text x='{LEFT}' y='15' font-size='13' font-weight='bold'>{escape(self.title)}"
            f"</text>{''.join(self.parts)}{axes}{labels}</svg>"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(values: Any, field: str, allow_none: bool = False) -> list[float | None]:
    """Validate a list of numbers (None marks a gap where allowed)."""
    if not isinstance(values, list | tuple):
        raise ChartError(f"{field} must be a list, got {type(values).__name__}")
    result: list[float | None] = []
    for value in values:
        if value is None and allow_none:
            result.append(None)
        elif _is_number(value) and math.isfinite(value):
            result.append(float(value))
        else:
            raise ChartError(f"{field} holds {value!r}, not a number")
    return result


def _aligned(
    named: Any, field: str, length: int
) -> tuple[dict[str, list[float | None]], list[float]]:
    """Named value lists, each as long as the axis (`length`), and every value present."""
    if not length or not isinstance(named, Mapping) or not named:
        raise ChartError(f"{field} must map names to value lists, beside a non-empty axis")
    aligned = {
        str(name): _numbers(values, f"{field}.{name}", True) for name, values in named.items()
    }
    for name, values in aligned.items():
        if len(values) != length:
            raise ChartError(f"{field}.{name} has {len(values)} values for {length} axis points")
    present = [v for values in aligned.values() for v in values if v is not None]
    if not present:
        raise ChartError(f"{field} has no values to draw")
    return aligned, present


def line_chart(spec: Mapping[str, Any]) -> str:
    """details["series"]: {"title", "x_label", "y_label", "x": [...], "lines": {name: [...]}}.
    Numeric x values are placed to scale (a dense axis gets round ticks); any other x values
    are spaced evenly."""
    xs = list(spec.get("x") or [])
    series, present = _aligned(spec.get("lines"), "series.lines", len(xs))
    frame = _Frame(
        str(spec.get("title", "")), 300, str(spec.get("x_label", "")), str(spec.get("y_label", ""))
    )
    low, high = min(present), max(present)
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    elif low >= 0 and low < 0.5 * high:
        low = 0.0
    to_y = frame.y_axis(low, high)
    numeric = all(_is_number(x) for x in xs)
    positions = [float(x) for x in xs] if numeric else [float(i) for i in range(len(xs))]
    x_low, x_high = min(positions), max(positions)
    span = (x_high - x_low) or 1.0

    def to_x(position: float) -> float:
        return LEFT + 10 + (frame.plot_width - 20) * (position - x_low) / span

    if numeric and len(xs) > MAX_POINT_TICKS:  # a dense series (samples over time)
        for tick in nice_ticks(x_low, x_high):
            if x_low <= tick <= x_high:
                frame.x_tick(to_x(tick), _number(tick))
    else:
        for position, label in zip(positions, xs, strict=True):
            frame.x_tick(to_x(position), _number(label) if numeric else str(label))
    colours = _colours(list(series), SIDE_COLOURS)
    for name, values in series.items():
        colour = colours[name]
        points = [
            (to_x(p), to_y(v)) for p, v in zip(positions, values, strict=True) if v is not None
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        frame.parts.append(
            f"<polyline class='line' data-series='{escape(name)}' points='{path}' "
            f"fill='none' stroke='{colour}' stroke-width='2'/>"
        )
        frame.parts.extend(
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{colour}'/>" for x, y in points
        )
    frame.legend(colours)
    return frame.svg("line")


def bar_chart(spec: Mapping[str, Any]) -> str:
    """details["bars"]: {"title", "y_label", "labels": [...], "groups": {name: [...]}}:
    one cluster per label, one bar per group (source and target side by side)."""
    labels = [str(label) for label in spec.get("labels") or []]
    values, present = _aligned(spec.get("groups"), "bars.groups", len(labels))
    frame = _Frame(str(spec.get("title", "")), 300, "", str(spec.get("y_label", "")))
    to_y = frame.y_axis(min(0.0, *present), max(0.0, *present))
    cluster = frame.plot_width / len(labels)
    bar = cluster * 0.8 / len(values)
    colours = _colours(list(values), SIDE_COLOURS)
    for index, label in enumerate(labels):
        left = LEFT + cluster * index + cluster * 0.1
        frame.x_tick(LEFT + cluster * (index + 0.5), label)
        for offset, (name, numbers) in enumerate(values.items()):
            value = numbers[index]
            if value is None:
                continue
            top, base = sorted((to_y(value), to_y(0.0)))
            frame.parts.append(
                f"<rect class='bar' data-series='{escape(name)}' x='{left + bar * offset:.1f}' "
                f"y='{top:.1f}' width='{bar * 0.92:.1f}' height='{max(base - top, 1):.1f}' "
                f"fill='{colours[name]}'><title>{escape(name)} {escape(label)}: "
                f"{_number(value)}</title></rect>"
            )
    frame.legend(colours)
    return frame.svg("bars")


def timeline_chart(events: Any, title: str = "Timeline") -> str:
    """details["timeline"]: [{"name", "start", "end", "kind"}] in seconds from the start of
    the run: one row per name, a bar per span, a diamond where start == end."""
    if not isinstance(events, list | tuple) or not events:
        raise ChartError("timeline needs a non-empty list of events")
    rows: list[str] = []
    spans = []
    for number, event in enumerate(events):
        if not isinstance(event, Mapping) or "name" not in event or "start" not in event:
            raise ChartError(f"timeline event {number} needs at least `name` and `start`")
        start, end = _numbers([event["start"], event.get("end")], f"timeline[{number}]", True)
        name = str(event["name"])
        if name not in rows:
            rows.append(name)
        spans.append((name, start or 0.0, end if end is not None else start or 0.0, event))
    label_width = min(200, 12 + 7 * max(len(name) for name in rows))
    height = TOP + BOTTOM + 22 * len(rows)
    frame = _Frame(title, height, "seconds from start", "")
    frame.plot_width = WIDTH - RIGHT - LEFT - label_width
    origin = LEFT + label_width
    last = max(max(end, start) for _, start, end, _ in spans)
    ticks = nice_ticks(0.0, last or 1.0)

    def to_x(seconds: float) -> float:
        return origin + frame.plot_width * seconds / ticks[-1]

    for tick in ticks:
        frame.x_tick(to_x(tick), _number(tick))
    kinds = list(dict.fromkeys(str(event.get("kind", "event")) for *_, event in spans))
    colours = _colours(kinds, KIND_COLOURS)
    for index, name in enumerate(rows):
        y = TOP + 22 * index + 4
        frame.parts.append(
            f"<text x='{origin - 6}' y='{y + 11}' text-anchor='end'>{escape(name[:28])}</text>"
        )
    for name, start, end, event in spans:
        y = TOP + 22 * rows.index(name) + 4
        kind = str(event.get("kind", "event"))
        tip = f"{name} ({kind}): {_number(start)}-{_number(end)} s"
        if end > start:
            frame.parts.append(
                f"<rect class='span' x='{to_x(start):.1f}' y='{y}' "
                f"width='{max(to_x(end) - to_x(start), 2):.1f}' height='14' "
                f"fill='{colours[kind]}'><title>{escape(tip)}</title></rect>"
            )
        else:
            x = to_x(start)
            frame.parts.append(
                f"<path class='span' d='M{x:.1f} {y} l7 7 l-7 7 l-7 -7 z' fill='{colours[kind]}'>"
                f"<title>{escape(tip)}</title></path>"
            )
    frame.legend(colours)
    return frame.svg("timeline")


def migration_timeline(migration: Mapping[str, Any]) -> str | None:
    """The migration's phases one after another, as a timeline (None if nothing ran)."""
    phases = migration.get("phases") or []
    if not migration.get("performed") or not phases:
        return None
    events, clock = [], 0.0
    for phase in phases:
        seconds = float(phase.get("seconds") or 0.0)
        kind = "ok" if phase.get("ok", True) else "failed"
        events.append({"name": phase["name"], "start": clock, "end": clock + seconds, "kind": kind})
        clock += seconds
    return timeline_chart(events, f"Migration phases ({migration.get('strategy', '')}), seconds")


def charts_for(details: Mapping[str, Any]) -> list[str]:
    """Every chart a check's details ask for, as SVG (or a note saying why one was not drawn)."""
    drawers: dict[str, Callable[[Any], str]] = {
        "series": line_chart,
        "bars": bar_chart,
        "timeline": timeline_chart,
    }
    drawn = []
    for key in CHART_KEYS:
        if key not in details:
            continue
        value = details[key]
        # "series" and "bars" may hold a list of charts; a timeline is itself a list.
        specs = value if key != "timeline" and isinstance(value, list) else [value]
        for spec in specs:
            try:
                drawn.append(drawers[key](spec))
            except (ChartError, TypeError, KeyError) as error:
                note = escape(str(error))
                drawn.append(f"<p class='chart-error'>{key} chart not drawn: {note}</p>")
    return drawn
