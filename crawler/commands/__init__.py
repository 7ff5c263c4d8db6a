"""This project's Scrapy commands (``COMMANDS_MODULE`` in :mod:`crawler.settings`)."""
