from __future__ import annotations

import sys

from tools.checkpoint_cli.app import main

sys.exit(main())
