"""Loads the pgcutover plugin so `pytest suites/` works from a checkout (a no-op when the
package is installed, where the entry point has already loaded it)."""

pytest_plugins = ["pgcutover.plugin"]
