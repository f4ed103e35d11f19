"""Vector search on the target answers as well as on the source: plans, recall, filtered
queries, latency, embedding drift and the guide's step-6 smoke test (fixtures/search.toml)."""

import pytest
from filelock import FileLock

from pgcutover.checks.search import drift, filtered, latency, plans, recall, smoke


@pytest.fixture(scope="session")
def search(pgcutover):
    """The rehearsal; with --reindex, after the target's vectors were re-embedded (once per
    run, by whichever xdist worker gets here first)."""
    if pgcutover.settings.reindex:
        workdir = pgcutover.session.workdir
        with FileLock(str(workdir / "reindex.lock")):
            if not (workdir / "reindex.done").exists():
                pgcutover.verify(drift.reindex)
                (workdir / "reindex.done").touch()
    return pgcutover


def test_search_plans(search):
    search.verify(plans.check)


def test_search_recall(search):
    search.verify(recall.check)


def test_search_filtered_through_the_index(search):
    search.verify(filtered.check)


def test_search_latency(search):
    search.verify(latency.check)


def test_embedding_drift(search):
    search.verify(drift.check)


def test_application_smoke(search):
    search.verify(smoke.check)
