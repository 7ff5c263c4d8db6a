"""Inspect or manage a crawl shared through Redis (``CHECKPOINT_REDIS_PREFIX``).

    python -m tools.redis_crawl status --redis-url URL --prefix NAME [--json]
    python -m tools.redis_crawl export --redis-url URL --prefix NAME --output FILE
                                       [--checkpoint-dir DIR]
    python -m tools.redis_crawl reset  --redis-url URL --prefix NAME [--force]

``status`` prints the crawl's state and counts (queued, in flight, done, records, live workers,
requests re-queued from workers whose lease expired). ``export`` writes the records stored so
far to a JSON Lines file (sorted by URL, atomically), e.g. on a machine other than the one that
exported at the end; it refuses, writing nothing, a FILE (or its ``.failed.jsonl`` sidecar)
that a stage of the local checkpoint directory (``--checkpoint-dir``, default
``data/checkpoints``) records or once recorded as its output or sidecar, or that is one of that
directory's checkpoint files; the file the crawl itself exported to on this machine
(``status``: exported to) is its own and is written again. ``reset`` deletes the crawl's keys; without ``--force`` it asks on a
terminal and refuses otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import redis

from common.errors import CheckpointError
from common.redis.frontier import (
    RedisFrontier,
    export_records,
    refuse_a_local_stage_file,
    safe_url,
)

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.redis_crawl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("status", "state and counts of the crawl"),
        ("export", "write the records stored so far to a JSON Lines file"),
        ("reset", "delete the crawl's keys"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--redis-url", required=True, help="redis://host:port/db")
        command.add_argument("--prefix", required=True, help="the crawl's CHECKPOINT_REDIS_PREFIX")
        if name == "status":
            command.add_argument("--json", action="store_true", help="print JSON")
        elif name == "export":
            command.add_argument("--output", required=True, help="JSON Lines file to write")
            command.add_argument(
                "--checkpoint-dir",
                default="data/checkpoints",
                help="the local checkpoint directory whose stages' files are refused "
                "(default: data/checkpoints)",
            )
        else:
            command.add_argument("--force", action="store_true", help="do not ask")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        frontier = RedisFrontier(args.redis_url, args.prefix)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "status":
            status = frontier.status()
            if args.json:
                print(json.dumps(status, indent=2, sort_keys=True))
            else:
                print(
                    f"{args.prefix}: {status['state']}; {status['done']} done, "
                    f"{status['queued']} queued, {status['in_flight']} in flight, "
                    f"{status['records']} records, {status['workers']} live workers, "
                    f"{status['requeued']} re-queued from expired leases"
                    + (f"; exported to {status['exported_to']}" if "exported_to" in status else "")
                )
        elif args.command == "export":
            refuse_a_local_stage_file(frontier, args.output, args.checkpoint_dir)
            count, failed = export_records(frontier, args.output)
            print(f"wrote {count} records ({failed} failed) to {args.output}")
        else:
            if not args.force:
                if not sys.stdin.isatty():
                    print("error: reset needs --force when not on a terminal", file=sys.stderr)
                    return 1
                answer = input(f"delete the Redis crawl {args.prefix!r}? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("nothing deleted")
                    return 1
            frontier.delete()
            print(f"deleted the Redis crawl {args.prefix!r}")
    except redis.RedisError as exc:
        print(f"error: Redis at {safe_url(args.redis_url)}: {exc}", file=sys.stderr)
        return 1
    except CheckpointError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        frontier.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
