"""`python -m mobilenets` is the `mobilenets` command."""

import sys

from mobilenets.cli import main

sys.exit(main())
