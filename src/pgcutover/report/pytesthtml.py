"""pytest-html's report of a rehearsal, stored beside the sign-off.

pytest-html writes its file in its own pytest_sessionfinish, after pgcutover's sign-off, and a
run only knows at its end whether it rehearsed anything. So the report goes to a private
temporary folder, and a hook wrapper copies it into reports/<run_id>/ (and reports/latest/)
once every pytest_sessionfinish has run; runs that wrote no sign-off keep nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path

import pytest
from pytest_html.basereport import BaseReport

PLUGIN_NAME = "pgcutover-pytest-html"
FILENAME = "pytest-report.html"
LABEL = "pytest-html report (every test, with output)"


class PytestHtmlCopy:
    """Copies pytest-html's report to the folders `destinations()` names at session end."""

    def __init__(
        self, config: pytest.Config, folder: Path, destinations: Callable[[], list[Path]]
    ) -> None:
        self.config = config
        self.folder = folder
        self.destinations = destinations

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            written = self.folder / FILENAME
            if written.exists():
                for destination in self.destinations():
                    if destination.is_dir():
                        shutil.copy(written, destination / FILENAME)
            self._silence_temporary_path()

    def _silence_temporary_path(self) -> None:
        """pytest-html's summary would print the temporary path, removed by then: its work is
        done, so unregister it (the sign-off summary names the copy instead)."""
        for _, plugin in self.config.pluginmanager.list_name_plugin():
            if isinstance(plugin, BaseReport):
                self.config.pluginmanager.unregister(plugin)

    def pytest_unconfigure(self) -> None:
        """Always remove the temporary folder, also when the session never finished."""
        shutil.rmtree(self.folder, ignore_errors=True)


def request_report(config: pytest.Config, destinations: Callable[[], list[Path]]) -> None:
    """When pytest-html is installed and the user passed no --html, ask it for one
    self-contained file and register the copier. Call from a tryfirst pytest_configure, so
    pytest-html's own pytest_configure sees the option."""
    if getattr(config.option, "htmlpath", "absent") is not None:
        return
    folder = Path(tempfile.mkdtemp(prefix="pgcutover-html-"))
    config.option.htmlpath = str(folder / FILENAME)
    config.option.self_contained_html = True
    config.pluginmanager.register(PytestHtmlCopy(config, folder, destinations), PLUGIN_NAME)


def requested(config: pytest.Config) -> bool:
    """True when this run asked pytest-html for the report (it will sit beside the sign-off)."""
    return config.pluginmanager.get_plugin(PLUGIN_NAME) is not None
