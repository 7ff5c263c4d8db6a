"""Operating-system helpers with no knowledge of checkpoints: atomic file writes, the writer
lock (``flock`` with the holder's pid), child processes that die with their parent, and the
test-only fault injection points (``CHECKPOINT_CRASH_AT`` / ``CHECKPOINT_FAIL_AT``)."""
