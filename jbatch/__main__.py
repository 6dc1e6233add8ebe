"""``python -m jbatch`` is the ``jbatch`` command."""

import sys

from jbatch.cli import main

sys.exit(main())
