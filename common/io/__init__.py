"""Operating-system helpers with no knowledge of checkpoints: atomic file writes, the writer
lock (``flock`` with the holder's pid), child processes that die with their parent, whether a
directory can take new files, and the test-only fault injection points
(``CHECKPOINT_CRASH_AT`` / ``CHECKPOINT_FAIL_AT``)."""
