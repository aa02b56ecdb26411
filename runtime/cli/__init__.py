"""The ``bucketfn`` command, one module per command group."""
