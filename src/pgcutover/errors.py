"""Error types that say what was tried and how to fix it."""

from __future__ import annotations


class PgcutoverError(Exception):
    """Base error: a problem the user can act on, carrying a remedy.

    The message never contains a password: callers pass redacted connection labels.
    """

    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.remedy}"


class ConfigError(PgcutoverError):
    """targets.toml, a .env file or a command-line option is wrong."""


class ConnectionProblem(PgcutoverError):
    """A database could not be reached or refused us."""


class ServerStartError(PgcutoverError):
    """An embedded server failed to start; the message carries its log tail."""


class MigrationError(PgcutoverError):
    """The migration refused to start or failed; `phase` names where."""

    def __init__(self, problem: str, remedy: str, phase: str = "preflight") -> None:
        super().__init__(problem, remedy)
        self.phase = phase
