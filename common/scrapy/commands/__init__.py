"""Scrapy commands for a project using the checkpoint components: ``COMMANDS_MODULE``.

Any Scrapy project gets a ``scrapy crawl`` whose exit code says whether the stage is done
(:mod:`common.scrapy.commands.crawl`) with one line in its settings::

    COMMANDS_MODULE = "common.scrapy.commands"
"""
