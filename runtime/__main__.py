"""``python -m runtime`` is the ``bucketfn`` command."""

import sys

from runtime.cli.main import main

sys.exit(main())
