"""This project's ``scrapy crawl``: :mod:`common.scrapy.commands.crawl`, kept at this path for
projects whose settings name ``COMMANDS_MODULE = "crawler.commands"``."""

from __future__ import annotations

from common.scrapy.commands.crawl import Command as CheckpointCrawlCommand

__all__ = ["Command"]


class Command(CheckpointCrawlCommand):
    """Scrapy finds a command by the module that defines it, so the alias is a subclass."""
