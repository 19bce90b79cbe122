"""SQLite storage through sqlite-utils: schema, migrations, writes and read-only queries.

Knows nothing of HTTP or NLP: it stores and returns plain dicts and rows.
"""

from storage.db import StorageError, open_db, open_readonly, utc_now  # noqa: F401
