"""SQLite storage through sqlite-utils: schema, migrations, writes and read-only queries.

Knows nothing of HTTP or NLP: it stores and returns plain dicts and rows. `open_db` / `open_readonly`
also take a PostgreSQL URL (`storage.postgres`); the public functions work on either handle.
"""

from storage.db import StorageError, open_db, open_readonly, utc_now  # noqa: F401
