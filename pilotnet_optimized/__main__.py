"""``python -m pilotnet_optimized`` is the ``pilotnet`` command."""

import sys

from pilotnet_optimized.cli import main

sys.exit(main())
