"""`python -m wna_gui` starts the desktop app."""

import sys

from .app.main import main

sys.exit(main())
