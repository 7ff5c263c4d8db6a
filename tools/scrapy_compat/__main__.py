from __future__ import annotations

from tools.scrapy_compat.app import main

raise SystemExit(main())
