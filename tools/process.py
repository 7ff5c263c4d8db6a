"""Child processes that cannot outlive the orchestrator (kept in :mod:`common.process`)."""

from __future__ import annotations

from common.process import child_popen_options

__all__ = ["child_popen_options"]
