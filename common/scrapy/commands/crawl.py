"""``scrapy crawl`` with an exit code that says whether the stage is done.

Scrapy's own command exits 0 for any crawl that got started, whatever became of it. This one
exits with :func:`common.scrapy.runtime.crawl_exit_code`: 1 when the checkpoint refused the start
(``CHECKPOINT_REFUSED_EXIT_CODE``) or the stage failed (an ``*_error`` close reason, a crawl that
fetched nothing), 0 otherwise (completed, paused, already completed); 128 + the signal number
(130 for Ctrl-C) when a second signal stopped the crawl at once, before it could close. A spider
that cannot be built from its arguments (a missing input file, a bad start URL) is one error
line and exit 1, not a traceback.

A project switches it on with ``COMMANDS_MODULE = "common.scrapy.commands"`` (this repository's
``crawler.commands`` is the same command).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from common.scrapy.runtime import crawl_exit_code

if TYPE_CHECKING:
    import argparse

__all__ = ["Command"]

logger = logging.getLogger("common.scrapy.commands")

# Errors a user's input causes; anything else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, OSError, UsageError)


class Command(ScrapyCrawlCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            super().run(args, opts)  # Scrapy's usage errors
            return
        assert self.crawler_process is not None
        try:
            crawler = self._create_crawler(args[0])
        except KeyError:  # Scrapy's spider loader: "Spider not found", as a traceback
            known = ", ".join(sorted(self.crawler_process.spider_loader.list()))
            raise UsageError(
                f"no spider named {args[0]!r}; this project has: {known}", print_help=False
            ) from None
        errors: list[BaseException] = []
        forced: list[int] = []
        process: Any = self.crawler_process
        signal_kill = process._signal_kill

        def record_forced_stop(signum: int, frame: Any) -> None:
            forced.append(signum)
            signal_kill(signum, frame)

        # Scrapy installs this handler after the first SIGINT/SIGTERM; it stops the reactor
        # without closing the spider, so nothing else tells the exit code what happened.
        process._signal_kill = record_forced_stop
        started = self.crawler_process.crawl(crawler, **opts.spargs)
        if isinstance(started, Deferred):
            started.addErrback(self._bootstrap_failed, errors)
        elif isinstance(started, asyncio.Future):
            started.add_done_callback(lambda task: self._task_done(task, errors))
        self.crawler_process.start()
        if forced:
            self.exitcode = 128 + forced[0]
        elif errors or self.crawler_process.bootstrap_failed:
            self.exitcode = 1
        else:
            self.exitcode = crawl_exit_code(crawler)

    def _bootstrap_failed(self, failure: Failure, errors: list[BaseException]) -> None:
        if failure.value is not None:
            self._report(failure.value, errors)

    def _task_done(self, task: asyncio.Future[Any], errors: list[BaseException]) -> None:
        if task.cancelled():
            return
        error = task.exception()  # retrieved: no "Task exception was never retrieved"
        if error is not None:
            self._report(error, errors)

    @staticmethod
    def _report(error: BaseException, errors: list[BaseException]) -> None:
        errors.append(error)
        if isinstance(error, _USER_ERRORS):
            logger.error("%s", error)
        else:
            logger.error("The crawl could not start", exc_info=error)
