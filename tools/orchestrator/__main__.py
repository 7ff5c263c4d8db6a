from __future__ import annotations

import sys

from tools.orchestrator import main

sys.exit(main())
