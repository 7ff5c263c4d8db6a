"""``python -m tools.bench NAME [options]``: dispatch to one benchmark module (see the package)."""

from __future__ import annotations

import importlib
import sys

_MODULES = {"crawl", "sqlite", "workers", "redis", "load", "chaos", "realdocs"}
_STAGES = {"engine", "tracker", "enrich", "pipeline"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print("names:", ", ".join(sorted(_STAGES | _MODULES)))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name in _STAGES:
        from tools.bench.stages import main as stages_main

        return stages_main(argv)
    if name in _MODULES:
        module = importlib.import_module(f"tools.bench.{name}")
        code: int = module.main(rest)
        return code
    print(
        f"error: unknown benchmark {name!r}; choose from {', '.join(sorted(_STAGES | _MODULES))}",
        file=sys.stderr,
    )
    return 2


sys.exit(main(sys.argv[1:]))
