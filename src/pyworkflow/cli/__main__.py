"""`python -m pyworkflow.cli`: the `pyworkflow` command."""

import sys

from pyworkflow.cli import main

sys.exit(main())
