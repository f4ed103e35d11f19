"""locust glue: load tests of the application's query shapes."""
