"""Progress of one shared stage, aggregated over every worker (pure values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from common.progress import eta_seconds, percent_complete, progress_line, throughput

__all__ = ["QueueProgress", "WorkerProgress"]


@dataclass(frozen=True, slots=True)
class WorkerProgress:
    """What one worker process has done; ``alive`` is judged by its heartbeat."""

    worker: str
    host: str
    pid: int
    done: int
    failed: int
    leased: int
    seconds_since_seen: float
    stopped: bool
    alive: bool

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe mapping (for the engine record's metadata and ``--status --json``)."""
        return {
            "worker": self.worker,
            "host": self.host,
            "pid": self.pid,
            "done": self.done,
            "failed": self.failed,
            "leased": self.leased,
            "seconds_since_seen": round(self.seconds_since_seen, 1),
            "state": "stopped" if self.stopped else ("alive" if self.alive else "silent"),
        }


@dataclass(frozen=True, slots=True)
class QueueProgress:
    """Counts over all items of a stage, plus the current run's rate.

    ``successful`` and ``skipped`` items are done; ``failed`` ones gave a failed record (or were
    abandoned after the attempt limit); ``leased`` ones are in a worker's hands; ``pending``
    ones wait. ``run_finished`` items finished in ``run_seconds`` since the starter last began.
    """

    stage: str
    total: int
    successful: int
    skipped: int
    failed: int
    leased: int
    pending: int
    abandoned: int
    run_finished: int
    run_seconds: float
    workers: tuple[WorkerProgress, ...] = ()
    exported: bool = False

    @property
    def processed(self) -> int:
        return self.successful + self.skipped + self.failed

    @property
    def remaining(self) -> int:
        return self.leased + self.pending

    @property
    def percent(self) -> float:
        return percent_complete(self.processed, self.total)

    @property
    def throughput(self) -> float:
        """Items per second over this run, all workers together."""
        return throughput(self.run_finished, self.run_seconds)

    @property
    def eta_seconds(self) -> float | None:
        return eta_seconds(self.processed, self.total, self.throughput)

    @property
    def live_workers(self) -> int:
        return sum(1 for w in self.workers if w.alive)

    def line(self) -> str:
        """One log line: the seed's progress figures plus the worker count."""
        return progress_line(
            self.percent,
            self.processed,
            self.total,
            self.throughput,
            self.eta_seconds,
            middle=[f"failed {self.failed}", f"in flight {self.leased}"],
            suffix=[f"workers {self.live_workers}"],
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe mapping of the counts, the rate and every worker."""
        return {
            "stage": self.stage,
            "total": self.total,
            "processed": self.processed,
            "successful": self.successful,
            "skipped": self.skipped,
            "failed": self.failed,
            "abandoned": self.abandoned,
            "leased": self.leased,
            "pending": self.pending,
            "remaining": self.remaining,
            "throughput": round(self.throughput, 2),
            "eta_seconds": self.eta_seconds,
            "exported": self.exported,
            "workers": [w.to_dict() for w in self.workers],
        }
