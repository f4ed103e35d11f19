"""pgcutover: rehearse and sign off a PostgreSQL + pgvector migration, as a pytest suite."""

__version__ = "0.1.0"
