"""`python -m pyworkflow`: the `pyworkflow` command."""

import sys

from pyworkflow.cli import main

sys.exit(main())
