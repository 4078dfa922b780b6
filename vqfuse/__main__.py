"""`python -m vqfuse ...` runs the command line."""

import sys

from vqfuse.cli import main

sys.exit(main())
