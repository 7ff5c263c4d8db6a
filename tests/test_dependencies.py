"""pyproject.toml declares what the code imports directly, and nothing the code does not use.

An AST scan of every import in the packages (and, separately, in the tests), mapped to the
distributions that provide them through ``importlib.metadata.packages_distributions``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"common", "crawler", "enrich", "tools", "tests"}
RUNTIME_PACKAGES = ("common", "crawler", "enrich", "tools")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(_normalized(match.group()))
    return names


def _imports(*folders: str) -> dict[str, set[str]]:
    """Third-party top-level module -> the files importing it. The benchmarks' optional peers
    (the ``bench`` extra, imported only under ``tools/bench``) are checked by
    :func:`test_the_benchmarks_optional_peers_are_in_the_bench_extra` instead: they need not be
    installed to run the tests."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in FIRST_PARTY or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    if _bench_peer(top) and path.is_relative_to(ROOT / "tools" / "bench"):
                        continue
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _bench_peer(module: str) -> bool:
    """``module`` (a top-level import name, such as ``bs4``) comes from a ``bench`` extra
    distribution (``beautifulsoup4``)."""
    names = packages_distributions().get(module, [module])
    return any(_normalized(name) in BENCH for name in names)


def _distributions(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Distribution -> the files importing it (through any of its modules)."""
    provided = packages_distributions()
    by_distribution: dict[str, set[str]] = {}
    for module, files in modules.items():
        assert module in provided, f"{module} (imported by {sorted(files)}) is not installed"
        for distribution in provided[module]:
            by_distribution.setdefault(_normalized(distribution), set()).update(files)
    return by_distribution


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = _declared(PROJECT["dependencies"])
TEST = _declared(PROJECT["optional-dependencies"]["test"])
BENCH = _declared(PROJECT["optional-dependencies"]["bench"])


def test_every_direct_import_of_the_packages_is_a_declared_dependency() -> None:
    used = _distributions(_imports(*RUNTIME_PACKAGES))
    undeclared = {name: sorted(files)[:3] for name, files in used.items() if name not in RUNTIME}
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


def test_every_declared_dependency_is_imported_by_the_packages() -> None:
    used = _distributions(_imports(*RUNTIME_PACKAGES))
    unused = sorted(RUNTIME - set(used))
    assert not unused, f"declared in [project] dependencies but never imported: {unused}"


def test_every_import_of_the_tests_is_declared() -> None:
    used = _distributions(_imports("tests"))
    undeclared = {
        name: sorted(files)[:3] for name, files in used.items() if name not in RUNTIME | TEST
    }
    assert not undeclared, f"imported by tests but in neither dependency list: {undeclared}"


def test_the_benchmarks_optional_peers_are_in_the_bench_extra() -> None:
    """What only the benchmarks import is in the ``bench`` extra, and only there."""
    peers: set[str] = set()
    for path in sorted((ROOT / "tools" / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                names = packages_distributions().get(top, [top])
                peers.update(_normalized(name) for name in names)
    assert peers >= BENCH, f"in the bench extra but never imported by tools/bench: {BENCH - peers}"
    assert not BENCH & RUNTIME, f"a benchmark peer is a runtime dependency: {BENCH & RUNTIME}"


def _number_parsers(path: Path) -> list[str]:
    """Functions in ``path`` that parse a number themselves (``int(...)``/``float(...)``) and
    raise ``argparse.ArgumentTypeError``: command-line number validators."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.FunctionDef):
            continue
        calls = {
            inner.func.id
            for inner in ast.walk(node)
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name)
        }
        raises = any(
            isinstance(inner, ast.Raise) and "ArgumentTypeError" in ast.unparse(inner)
            for inner in ast.walk(node)
        )
        if raises and calls & {"int", "float"}:
            found.append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def test_command_line_number_validators_live_in_one_module() -> None:
    """tools and enrich (which may not import tools) share common/argtypes.py."""
    found = [
        name
        for package in RUNTIME_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in _number_parsers(path)
    ]
    assert found and all(name.startswith("common/argtypes.py:") for name in found), found
