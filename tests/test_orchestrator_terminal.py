"""``python -m tools.orchestrator`` on a terminal: what the live bars leave behind when stopped.

The orchestrator is a real process on a pseudo-terminal, its stage a real Scrapy child. The site
accepts connections and never answers, so the stage is in flight for as long as the test needs
and its graceful pause (which waits for the request in flight) cannot win the race against a
second Ctrl-C.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests._terminal import Terminal, plain

REPO_ROOT = Path(__file__).resolve().parent.parent
BAR_RE = re.compile(r"^discovery +━+ .*$", re.M)


def last_bar(screen: str) -> str:
    """The discovery bar as last drawn."""
    bars = BAR_RE.findall(re.sub(r"\r\n?", "\n", plain(screen)))
    return bars[-1].rstrip() if bars else ""


@pytest.mark.slow
def test_a_second_ctrl_c_leaves_the_bars_stopped_and_the_cursor_shown(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    stage_log = data_dir / "logs" / "stage1_discovery.log"

    def logged(text: str) -> bool:
        return stage_log.is_file() and text in stage_log.read_text(errors="replace")

    with socket.create_server(("127.0.0.1", 0)) as server:  # never accepts: no answer, ever
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        command = [sys.executable, "-m", "tools.orchestrator", "--stage", "discovery"]
        command += ["--data-dir", str(data_dir), "--start-url", url]
        with Terminal(command, cwd=REPO_ROOT, columns=80) as terminal:
            # In flight: Scrapy has its signal handlers and the bar its rate and ETA.
            terminal.read_until(
                lambda: logged("Spider opened") and "ETA" in last_bar(terminal.screen),
                120,
                "the discovery bar to show the running stage's ETA",
            )
            running = last_bar(terminal.screen)
            assert " running " in running, running
            terminal.process.send_signal(signal.SIGINT)
            terminal.read_until(
                lambda: logged("Received SIGINT"), 60, "the stage to receive the first SIGINT"
            )
            terminal.process.send_signal(signal.SIGINT)
            code = terminal.finish(60)
            screen = terminal.screen

    assert code == 130, screen[-3000:]
    assert "Traceback" not in screen, screen[-3000:]
    # The bar as last drawn says the stage stopped, not the rate and ETA of a killed child.
    bar = last_bar(screen)
    assert re.fullmatch(r"discovery +━+ +\d+/\S+ +stopped +at once: rerun to resume", bar), (
        running,
        bar,
    )
    # Then, as rich's own exit does: a new line and the cursor shown; then the one line saying
    # how to go on.
    tail = screen[screen.rindex("at once: rerun to resume") :]
    assert "\x1b[?25l" not in tail, repr(tail)
    assert re.fullmatch(
        r"at once: rerun to resume *(\x1b\[0m)?\r?\n\x1b\[\?25h"
        r"stopped at once; checkpoints are valid: run the same command to resume\r?\n",
        tail,
    ), repr(tail)
