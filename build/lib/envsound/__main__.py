"""``python -m envsound ARGS`` is ``envsound ARGS``."""

import sys

from envsound.cli.main import main

sys.exit(main())
