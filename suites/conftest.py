"""Suites are what users run: thin tests that call pgcutover's checks and assert on them."""
