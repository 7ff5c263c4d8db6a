"""Where the shared queue lives: a PostgreSQL connection string, and how to show it safely."""

from __future__ import annotations

import os

__all__ = ["DSN_ENV", "describe_dsn", "resolve_dsn"]

#: The environment variable a worker on another machine reads its connection string from.
DSN_ENV = "RESUMABLE_CRAWL_DSN"


def resolve_dsn(explicit: str | None) -> str | None:
    """``explicit`` if given, else ``$RESUMABLE_CRAWL_DSN``, else None."""
    value = explicit if explicit else os.environ.get(DSN_ENV, "")
    return value.strip() or None


def describe_dsn(dsn: str) -> str:
    """``postgresql://user@host:port/db`` without the password, for messages and records."""
    # Here, not at the top: resolving a DSN must not load psycopg (see the package docstring).
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # a malformed string: say so without echoing a secret
        return "<unparsable PostgreSQL connection string>"
    user = f"{params['user']}@" if params.get("user") else ""
    host = str(params.get("host") or "localhost")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"
