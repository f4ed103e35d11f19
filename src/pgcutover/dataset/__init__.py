"""The rehearsal workload: schema, real-text corpus, embedder and seeding."""
