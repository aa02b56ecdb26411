"""``python -m runtime`` is the ``bucketfn`` command."""

import sys

from runtime.cli import main

sys.exit(main())
