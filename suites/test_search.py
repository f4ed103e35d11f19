"""Vector search on the target answers as well as on the source: plans, recall, filtered
queries, latency, embedding drift and the guide's step-6 smoke test (fixtures/search.toml)."""

import pytest
from filelock import FileLock

from pgcutover.checks.search import drift


@pytest.fixture(scope="session")
def search(pgcutover):
    """The rehearsal; with --reindex, after the target's vectors were re-embedded (once per
    run, by whichever xdist worker gets here first)."""
    if pgcutover.settings.reindex:
        workdir = pgcutover.session.workdir
        with FileLock(str(workdir / "reindex.lock")):
            if not (workdir / "reindex.done").exists():
                pgcutover.verify_extra(drift.reindex)
                (workdir / "reindex.done").touch()
    return pgcutover


def test_search_plans(search):
    search.verify("search.plan")


def test_search_recall(search):
    search.verify("search.recall")


def test_search_filtered_through_the_index(search):
    search.verify("search.filtered")


def test_search_latency(search):
    search.verify("search.latency")


def test_embedding_drift(search):
    search.verify("search.drift")


def test_application_smoke(search):
    search.verify("search.smoke")
