"""``python -m tools.scrapy_compat``: Scrapy's own tests, stock and with the checkpoint on.

See :mod:`tools.scrapy_compat.app` for what it does and :mod:`tools.scrapy_compat.plugin` for
how the components are switched on inside Scrapy's test run.
"""
