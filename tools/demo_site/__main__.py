from __future__ import annotations

import sys

from tools.demo_site.site import main

sys.exit(main())
