"""Allow `python -m voicio`."""

import sys

from voicio.cli import main

sys.exit(main())
