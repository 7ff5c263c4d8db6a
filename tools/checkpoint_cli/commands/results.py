"""``results``: what the pipeline found, read from the stage outputs and their failed sidecars.

Per stage: records written, pages per HTTP status (or outcome, when there was no response), the
most frequent failure reasons (HTTP errors in the output and items in the ``.failed.jsonl``
sidecar together), hosts by pages and failures (slowest first when records carry a fetch time),
and a few sample records.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tools.checkpoint_cli import render
from tools.checkpoint_cli.base import (
    EXIT_OK,
    CliError,
    open_manager,
    out,
    print_json,
    say_unreadable,
)
from tools.checkpoint_cli.data import StageOutput, data_dir_of, read_records, recorded_outputs

__all__ = ["StageResults", "cmd_results", "summarize"]

#: Record fields holding a fetch time, and the factor to seconds.
TIMING_FIELDS = (("elapsed_ms", 0.001), ("download_latency", 1.0), ("elapsed", 1.0))
_REASON_WIDTH = 160


@dataclass
class _Host:
    pages: int = 0
    failed: int = 0
    timed: int = 0
    seconds: float = 0.0


@dataclass
class StageResults:
    """What one stage's output and sidecar hold (JSON-able through :meth:`to_dict`)."""

    stage: str
    status: str
    output: Path
    failed_file: Path
    records: int = 0
    failed_records: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    reason_examples: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, _Host] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, top: int) -> dict[str, Any]:
        timed = any(h.timed for h in self.hosts.values())

        def host_key(item: tuple[str, _Host]) -> tuple[float, int, str]:
            name, h = item
            mean = h.seconds / h.timed if h.timed else 0.0
            return (-mean, -h.failed, name) if timed else (-h.failed, -h.pages, name)

        hosts = sorted(self.hosts.items(), key=lambda item: host_key(item))[:top]
        return {
            "stage": self.stage,
            "status": self.status,
            "output": str(self.output),
            "failed_file": str(self.failed_file),
            "records": self.records,
            "failed_records": self.failed_records,
            "pages_by_status": dict(sorted(self.by_status.items(), key=lambda kv: (-kv[1], kv[0]))),
            "top_failures": [
                {"reason": reason, "count": n, "example": self.reason_examples[reason]}
                for reason, n in self.reasons.most_common(top)
            ],
            "hosts_timed": timed,
            "hosts": [
                {
                    "host": name,
                    "pages": h.pages,
                    "failed": h.failed,
                    "mean_seconds": round(h.seconds / h.timed, 4) if h.timed else None,
                }
                for name, h in hosts
            ],
            "samples": self.samples,
        }


def _status_of(record: dict[str, Any]) -> str:
    status = record.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    return str(record.get("outcome") or "no response")


def _failure_reason(record: dict[str, Any], *, sidecar: bool) -> str | None:
    """Why ``record`` failed, or None if it did not: an error, else an HTTP error status."""
    error = record.get("error")
    status = record.get("status")
    if error:
        reason = str(error)
    elif isinstance(status, int) and status >= 400:
        reason = f"HTTP {status}"
    elif record.get("ok") is False or sidecar:
        reason = str(record.get("outcome") or "failed")
    else:
        return None
    reason = " ".join(reason.split())
    return reason if len(reason) <= _REASON_WIDTH else reason[: _REASON_WIDTH - 1] + "…"


def _seconds(record: dict[str, Any]) -> float | None:
    for name, factor in TIMING_FIELDS:
        value = record.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) * factor
    return None


def summarize(output: StageOutput, samples: int = 3) -> StageResults:
    """Read one stage's committed records and sidecar (streamed: constant memory per record)."""
    results = StageResults(output.stage, output.status, output.output, output.failed)
    for sidecar, path, committed in (
        (False, output.output, output.committed),
        (True, output.failed, output.failed_committed),
    ):
        for record in read_records(path, committed):
            url = str(record.get("url") or "")
            host = results.hosts.setdefault(urlsplit(url).netloc or "-", _Host())
            host.pages += 1
            if sidecar:
                results.failed_records += 1
            else:
                results.records += 1
                if len(results.samples) < samples:
                    results.samples.append(record)
            results.by_status[_status_of(record)] += 1
            reason = _failure_reason(record, sidecar=sidecar)
            if reason is not None:
                host.failed += 1
                results.reasons[reason] += 1
                results.reason_examples.setdefault(reason, url)
            seconds = _seconds(record)
            if seconds is not None:
                host.timed += 1
                host.seconds += seconds
    return results


def _text(data: dict[str, Any]) -> str:
    lines = [
        f"Stage: {data['stage']} ({data['status']})",
        f"  Output: {data['output']}: {data['records']} records",
        f"  Failed items: {data['failed_file']}: {data['failed_records']}",
    ]
    statuses = ", ".join(f"{k} {v}" for k, v in data["pages_by_status"].items())
    lines.append(f"  Pages by status: {statuses or '-'}")
    if data["top_failures"]:
        lines.append("  Top failure reasons:")
        lines += [
            f"    {f['count']:>6}  {f['reason']}  (e.g. {f['example']})"
            for f in data["top_failures"]
        ]
    if data["hosts"]:
        timed = data["hosts_timed"]
        lines.append("  Slowest hosts:" if timed else "  Hosts (no fetch times recorded):")
        rows = [
            [
                h["host"],
                str(h["pages"]),
                str(h["failed"]),
                "-" if h["mean_seconds"] is None else f"{h['mean_seconds']:.3f}",
            ]
            for h in data["hosts"]
        ]
        table = render.format_plain_table(["Host", "Pages", "Failed", "Mean s"], rows)
        lines += ["    " + line for line in table.splitlines()]
    if data["samples"]:
        lines.append("  Sample records:")
        for record in data["samples"]:
            text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            lines.append("    " + (text if len(text) <= 150 else text[:149] + "…"))
    return "\n".join(lines)


def cmd_results(args: argparse.Namespace) -> int:
    """``results``: pages per status, top failure reasons, hosts and samples, per stage."""
    manager = open_manager(args)
    data_dir = data_dir_of(args)
    outputs, unreadable = recorded_outputs(manager, data_dir, args.stage)
    try:
        stages = [summarize(o, args.samples).to_dict(args.top) for o in outputs]
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json({"data_dir": str(data_dir), "stages": stages})
        return say_unreadable(unreadable)
    if not stages and not unreadable:
        out(f"no stage outputs recorded in {manager.checkpoint_dir}")
        return EXIT_OK
    if stages:
        out("\n\n".join(_text(stage) for stage in stages))
    return say_unreadable(unreadable)
