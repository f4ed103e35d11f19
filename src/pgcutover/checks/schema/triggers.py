"""Triggers on tables and views (definition and enabled state: a trigger disabled on the
target silently stops e.g. keeping updated_at current) and event triggers of the database.
An event trigger missing on the target is the platform check's finding (only a superuser may
create one, so a managed target may refuse it; platform.event_trigger.*), not a second
failure here."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import SKIP, CheckResult
from pgcutover.checks.schema.common import (
    AREA,
    Side,
    Spec,
    compare_each,
    differences,
    normalise,
    not_extension_member,
    visible,
)
from pgcutover.config import Settings

STATES = {"O": "enabled", "D": "DISABLED", "R": "enabled in replica mode only", "A": "always"}
ENABLE = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}

TRIGGERS = f"""
SELECT n.nspname || '.' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid),
       t.tgenabled, format('%%I.%%I', n.nspname, c.relname), quote_ident(t.tgname)
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND n.nspname = ANY(%(schemas)s)
  AND {not_extension_member("pg_class", "c.oid")}
"""

EVENT_TRIGGERS = f"""
SELECT e.evtname, e.evtevent, e.evtenabled, e.evtfoid::regprocedure::text,
       coalesce(e.evttags, '{{}}'), quote_ident(e.evtname)
FROM pg_event_trigger e
WHERE {not_extension_member("pg_event_trigger", "e.oid")}
"""


def read_triggers(side: Side) -> dict[str, dict[str, Any]]:
    """schema.table.trigger -> definition, state."""
    return {
        name: {
            "definition": normalise(definition),
            "state": STATES.get(state, state),
            "_sql": (definition, state, table, trigger),
        }
        for name, definition, state, table, trigger in side.rows(TRIGGERS)
    }


def read_event_triggers(side: Side) -> dict[str, dict[str, Any]]:
    """event trigger -> event, state, function, tags."""
    return {
        name: {
            "event": event,
            "state": STATES.get(state, state),
            "function": function,
            "tags": sorted(tags),
            "_sql": (state, quoted),
        }
        for name, event, state, function, tags, quoted in side.rows(EVENT_TRIGGERS)
    }


def _remedy(source: Spec | None, target: Spec | None) -> str:
    if source is None:
        _, _, table, trigger = target["_sql"]  # type: ignore[index]
        return f"DROP TRIGGER {trigger} ON {table};"
    definition, state, table, trigger = source["_sql"]
    enable = f"ALTER TABLE {table} {ENABLE[state]} TRIGGER {trigger};"
    if target is not None and target["definition"] == source["definition"]:
        return enable
    drop = f"DROP TRIGGER IF EXISTS {trigger} ON {table}; " if target is not None else ""
    return f"{drop}{definition}; {enable if state != 'O' else ''}".strip()


def _event_remedy(source: Spec | None, target: Spec | None) -> str:
    if source is None:
        return f"DROP EVENT TRIGGER {target['_sql'][1]};"  # type: ignore[index]
    state, quoted = source["_sql"]
    if target is not None and set(differences(visible(source), visible(target))) == {"state"}:  # type: ignore[arg-type]
        return f"ALTER EVENT TRIGGER {quoted} {ENABLE[state]};"
    return f"recreate event trigger {quoted} as on the source (CREATE EVENT TRIGGER ...)"


def _missing_event_trigger(name: str) -> CheckResult:
    return CheckResult(
        id=f"schema.event_trigger.{name}",
        area=AREA,
        status=SKIP,
        message=f"event trigger {name} is missing on the target: judged by "
        f"platform.event_trigger.{name}",
    )


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per trigger and per event trigger."""
    source_events, target_events = read_event_triggers(source), read_event_triggers(target)
    missing = source_events.keys() - target_events.keys()
    return [
        *compare_each(
            "schema.trigger",
            "trigger",
            read_triggers(source),
            read_triggers(target),
            _remedy,
            lambda dst: f"same definition, {dst['state']}",
        ),
        *compare_each(
            "schema.event_trigger",
            "event trigger",
            {name: spec for name, spec in source_events.items() if name not in missing},
            target_events,
            _event_remedy,
            lambda dst: f"on {dst['event']}, {dst['state']}",
        ),
        *(_missing_event_trigger(name) for name in sorted(missing)),
    ]
