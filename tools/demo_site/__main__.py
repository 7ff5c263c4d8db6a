from __future__ import annotations

import sys

from tools.demo_site.cli import main

sys.exit(main())
