"""`python -m esper` is the `esper` command."""

import sys

from esper.cli.main import main

sys.exit(main())
