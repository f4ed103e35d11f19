"""Load the app's query shapes into a PostgreSQL database with locust.

    locust -f loadtests/locustfile.py --pg-target staging          # web UI on :8089
    locust -f loadtests/locustfile.py --pg-target staging --headless -u 8 -r 4 -t 60s

Options, weights and service levels: loadtests/README.md and fixtures/load.toml.
"""

from locust import events  # noqa: F401  (locust before psycopg: gevent must patch first)

# isort: split
from pgcutover.load.user import PostgresUser


class AppQueries(PostgresUser):
    """The app's query mix: vector search (filtered and not), documents by user, and writes
    when --pg-writes allows them."""
