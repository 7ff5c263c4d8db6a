"""A command run with a pseudo-terminal as its stdout and stderr, read as it writes."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(screen: str) -> str:
    """``screen`` without cursor moves and colours."""
    return _ESCAPES.sub("", screen)


class Terminal:
    """``command`` on a ``columns``-wide pseudo-terminal; what it wrote so far is ``screen``.

    The terminal is read whenever a method waits, so the command never blocks on a full one.
    Use as a context manager: a command still running at the end is killed.
    """

    def __init__(self, command: list[str], *, cwd: Path, columns: int = 80) -> None:
        master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm"}
        try:
            self.process = subprocess.Popen(command, cwd=cwd, stdout=slave, stderr=slave, env=env)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._closed = False

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        os.close(self._master)

    @property
    def screen(self) -> str:
        """Everything written so far, escapes included."""
        return b"".join(self._chunks).decode("utf-8", "replace")

    def _read(self, wait: float) -> bool:
        """Read what is there (waiting up to ``wait`` s for some); False once all writers closed."""
        if self._closed:
            return False
        ready, _, _ = select.select([self._master], [], [], wait)
        if ready:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                data = b""
            if not data:
                self._closed = True
                return False
            self._chunks.append(data)
        return True

    def read_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Keep reading until ``condition()`` holds; fail naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            if not self._read(0.2) and self.process.poll() is not None and not condition():
                raise AssertionError(
                    f"exited with {self.process.returncode} before {what}:\n{self.screen[-3000:]}"
                )

    def finish(self, timeout: float) -> int:
        """Read to the end of the command's output; its exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._read(1.0) or (self.process.poll() is not None and not self._pending()):
                break
        return self.process.wait(timeout=max(1.0, deadline - time.monotonic()))

    def _pending(self) -> bool:
        ready, _, _ = select.select([self._master], [], [], 0)
        return bool(ready)
