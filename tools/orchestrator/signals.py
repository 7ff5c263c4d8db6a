"""Ctrl-C and SIGTERM during a run: the first pauses the running stage, the second stops at once.

The first signal is forwarded to the stage's child, which saves and pauses; the orchestrator
then exits 130/143. A second one kills the child and raises :class:`StoppedAtOnce` in the main
thread, so the live view and the demo site close on the way out; a third, while that unwinds,
exits on the spot. The checkpoints on disk stay valid throughout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

from rich.console import Console

from tools.orchestrator import STOPPED_AT_ONCE
from tools.orchestrator.stages import RunState
from tools.orchestrator.view import ProgressView

__all__ = ["STOPPED_AT_ONCE", "StoppedAtOnce", "showing_stop_at_once", "signal_handling"]


class StoppedAtOnce(BaseException):
    """A second SIGINT/SIGTERM: the stage child is killed and the run unwinds from here.

    Raised by the handler in the main thread, wherever it is, like :class:`KeyboardInterrupt`
    (and, like it, no ``except Exception`` holds it up): the ``with`` blocks on the way close
    the live view the way rich does on a normal exit and stop the demo site.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signal_handling(state: RunState, console: Console) -> Iterator[None]:
    """First SIGINT/SIGTERM: forward it to the running stage; second: stop at once
    (:class:`StoppedAtOnce`); a third, while that unwinds: exit on the spot."""

    def handle(signum: int, frame: FrameType | None) -> None:
        state.signals_seen += 1
        state.stop_signal = state.stop_signal or signum
        child = state.child
        if child is not None and child.poll() is None:
            if state.signals_seen == 1:
                child.send_signal(signum)
            else:
                child.kill()
        if state.signals_seen == 1:
            return
        if state.signals_seen == 2:
            raise StoppedAtOnce(state.stop_signal)
        # The unwinding is stuck (a demo site slow to stop, say): leave without it. The live
        # view hid the cursor mid-line: show it and end the line before going.
        restore = b"\x1b[?25h\n" if console.is_terminal else b""
        with contextlib.suppress(OSError):
            os.write(sys.stdout.fileno(), restore + STOPPED_AT_ONCE.encode() + b"\n")
        os._exit(128 + state.stop_signal)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def showing_stop_at_once(view: ProgressView) -> Iterator[None]:
    """On :class:`StoppedAtOnce`, the bar of the stage that was running says so before the
    view closes (not the rate and ETA it had when the child was killed)."""
    try:
        yield
    except StoppedAtOnce:
        view.stop_running("at once: rerun to resume")
        raise
