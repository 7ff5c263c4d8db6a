"""The SQLite store (:class:`SqliteStore`): every stage of a checkpoint directory in one database.

One module per job: :mod:`.database` (the file, its per-thread connections, schema and
transactions), :mod:`.store` (records, backups and history: the :class:`CheckpointStore`),
:mod:`.keys` (done keys in a table) and :mod:`.ledger` (seed 004's per-item ledger). A save
writes the record, its keys and its ledger rows in one transaction.
"""

from __future__ import annotations

from common.stores.sqlite.database import DATABASE_NAME, SCHEMA_VERSION, SqliteDatabase
from common.stores.sqlite.keys import SqliteKeySet
from common.stores.sqlite.ledger import SqliteLedger
from common.stores.sqlite.store import SqliteStore

__all__ = [
    "DATABASE_NAME",
    "SCHEMA_VERSION",
    "SqliteDatabase",
    "SqliteKeySet",
    "SqliteLedger",
    "SqliteStore",
]
