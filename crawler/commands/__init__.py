"""This project's Scrapy commands, kept at this path: :mod:`common.scrapy.commands`."""
