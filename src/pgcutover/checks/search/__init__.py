"""Vector search on the target answers as well as on the source: plans, recall, latency,
embedding drift and an application smoke test, on the app's own query shapes
(fixtures/search.toml, overridable per target in targets.toml)."""
