"""``common.io.process.child_popen_options``: a child never outlives the orchestrator.

The race: the orchestrator is SIGKILLed after it forked a child but before the child asked the
kernel to kill it with its parent. The child then gets no signal; it must notice and go, or it
lives on (holding a stage lock or the demo site's port for the next run).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = r"""
import os, signal, subprocess, sys, threading, time
from pathlib import Path
from common.io.process import child_popen_options

pid_file = Path(sys.argv[1])
parent = os.getpid()
die_with_parent = child_popen_options()["preexec_fn"]

def preexec():  # in the child: announce ourselves, wait for the parent to die, then go on
    fd = os.open(str(pid_file), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    deadline = time.monotonic() + 20
    while os.getppid() == parent and time.monotonic() < deadline:
        pass
    die_with_parent()

def kill_me_once_the_child_is_forked():
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(parent, signal.SIGKILL)

threading.Thread(target=kill_me_once_the_child_is_forked, daemon=True).start()
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], **{
    **child_popen_options(), "preexec_fn": preexec})
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_child_started_while_its_parent_dies_does_not_outlive_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    repo = Path(__file__).resolve().parent.parent
    parent = subprocess.run(
        [sys.executable, "-c", PARENT, str(pid_file)], cwd=repo, timeout=60, check=False
    )
    assert parent.returncode == -9
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    alive = _alive(child)
    if alive:
        subprocess.run(["kill", "-9", str(child)], check=False)
    assert not alive, f"child {child} outlived its parent"
