"""Expectation suites as data: TOML files of [[expect]] entries, one suite per file.

Users add suites per table without Python: a file in fixtures/expectations/, or files and
folders listed under `extra_suites` in targets.toml [expectations].
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgcutover.config import FIXTURES_DIR, Settings
from pgcutover.errors import ConfigError

BUILTIN_DIR = FIXTURES_DIR / "expectations"
#: Keys of an [[expect]] entry that are pgcutover's; every other key goes to great-expectations.
OWN_KEYS = ("table", "name", "type", "remedy")
VARIABLE = re.compile(r"\$\{(\w+)\}")
NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Expectation:
    """One expectation on one table, as a suite file states it."""

    suite: str
    schema: str
    table: str
    name: str
    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def check_id(self) -> str:
        """expectations.<suite>.<schema.table>.<name>"""
        return f"expectations.{self.suite}.{self.qualified_table}.{self.name}"


def _substitute(value: Any, variables: Mapping[str, object], where: str) -> Any:
    """Replace ${name} in strings (nested lists too) with the run's values."""
    if isinstance(value, list):
        return [_substitute(item, variables, where) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            known = ", ".join(f"${{{name}}}" for name in variables)
            raise ConfigError(
                f"{where}: unknown variable ${{{match.group(1)}}}", f"use one of: {known}"
            )
        return str(variables[match.group(1)])

    return VARIABLE.sub(replace, value)


def _entry(
    suite: str, number: int, raw: Any, path: Path, variables: Mapping[str, object]
) -> Expectation:
    where = f"{path} [[expect]] #{number}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a table", "write each expectation as [[expect]]")
    missing = [key for key in ("table", "type") if not raw.get(key)]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}", "see the comment in rag.toml")
    schema, dot, table = str(raw["table"]).partition(".")
    if not dot or not schema or not table:
        raise ConfigError(
            f"{where}: table {raw['table']!r} is not schema.table", "write e.g. public.users"
        )
    kwargs = {
        key: _substitute(value, variables, where)
        for key, value in raw.items()
        if key not in OWN_KEYS
    }
    default_name = str(raw["type"]).removeprefix("expect_")
    if "column" in kwargs:
        default_name += f"_{kwargs['column']}"
    name = str(raw.get("name") or default_name)
    if not NAME.match(name):
        raise ConfigError(f"{where}: name {name!r}", "use letters, digits and underscores only")
    return Expectation(
        suite=suite,
        schema=schema,
        table=table,
        name=name,
        type=str(raw["type"]),
        kwargs=kwargs,
        remedy=str(raw.get("remedy", "")),
    )


def load_suite(path: Path, variables: Mapping[str, object]) -> list[Expectation]:
    """The expectations of one suite file; the suite is named after the file."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(
            f"cannot read expectation suite {path}: {error}", "fix the file"
        ) from None
    suite = path.stem
    if not NAME.match(suite):
        raise ConfigError(f"suite file name {path.name!r}", "use letters, digits, underscores")
    entries = document.get("expect", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path} holds no [[expect]] entries", "add some or remove the file")
    expectations = [_entry(suite, n, raw, path, variables) for n, raw in enumerate(entries, 1)]
    seen: set[str] = set()
    for expectation in expectations:
        if expectation.check_id in seen:
            raise ConfigError(
                f"{path}: two expectations are named {expectation.name!r} on "
                f"{expectation.qualified_table}",
                "give each a unique `name`",
            )
        seen.add(expectation.check_id)
    return expectations


def suite_files(settings: Settings) -> list[Path]:
    """Built-in suites, then the ones targets.toml [expectations] extra_suites names."""
    extra = settings.section("expectations").get("extra_suites", [])
    base = settings.targets_file.parent
    files = sorted(BUILTIN_DIR.glob("*.toml"))
    for entry in extra:
        path = (base / str(entry)).resolve()
        if path.is_dir():
            files.extend(sorted(path.glob("*.toml")))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(
                f"expectation suite {path} (extra_suites in {settings.targets_file}) "
                "does not exist",
                "fix the path: it is relative to the folder of targets.toml",
            )
    return files


def load_suites(files: Iterable[Path], settings: Settings) -> list[Expectation]:
    """Every expectation of every suite file, with ${vector_dimensions} filled in."""
    variables = {"vector_dimensions": settings.vector_dimensions}
    expectations: list[Expectation] = []
    names: dict[str, Path] = {}
    for path in files:
        if path.stem in names:
            raise ConfigError(
                f"two expectation suites are named {path.stem!r}: {names[path.stem]} and {path}",
                "rename one of the files",
            )
        names[path.stem] = path
        expectations.extend(load_suite(path, variables))
    return expectations
