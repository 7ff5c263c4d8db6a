"""One error tree: every error class of common/ is a CheckpointError drawn in common.errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import common
from common import errors
from common.errors import CheckpointError, StoreUnavailableError
from common.io.process import default_worker_id
from common.work_queue.errors import WorkQueueError, WorkQueueUnavailableError


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(common.__path__, "common."):
        if info.name.startswith(("common.scrapy", "common.checkpoint_middleware")):
            continue  # Scrapy integration: its module imports need a crawler project
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[name] = value
    return found


def test_every_error_of_common_is_in_the_one_tree() -> None:
    classes = _error_classes()
    assert {"LedgerUnavailableError", "FrontierConfigError", "LeaseLostError"} <= set(classes)
    doc = errors.__doc__ or ""
    for name, cls in classes.items():
        assert issubclass(cls, CheckpointError), f"{cls.__module__}.{name} is outside the tree"
        assert name in doc, f"{name} is not drawn in common.errors' docstring"


def test_infrastructure_failures_are_distinct_from_state_errors() -> None:
    assert issubclass(WorkQueueUnavailableError, StoreUnavailableError)
    assert issubclass(WorkQueueUnavailableError, WorkQueueError)
    assert not issubclass(errors.InputChangedError, StoreUnavailableError)
    assert not issubclass(errors.CheckpointCorruptError, StoreUnavailableError)


def test_one_worker_id_format() -> None:
    from common.ledger import default_worker_id as ledger_id
    from common.work_queue import default_worker_id as queue_id

    assert ledger_id is queue_id is default_worker_id
    host, _, pid = default_worker_id().rpartition("-")
    assert host and pid.isdigit()
