from __future__ import annotations

import sys

from tools.orchestrator.app import main

sys.exit(main())
