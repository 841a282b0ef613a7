"""``python -m application.cli``: what worker processes are started with."""

import sys

from application.cli.parser import main

sys.exit(main())
