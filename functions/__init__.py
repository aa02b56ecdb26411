"""The functions this deployment runs. ``bucketfn run functions:app`` loads ``app``.

Add a function: write a module with its own ``Router`` and list it here.
"""

from functions import csv_row_count
from runtime import App

app = App([csv_row_count.router])

__all__ = ["app"]
