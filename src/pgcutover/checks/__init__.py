"""Checks: one module per concern; each returns CheckResults and never asserts."""
