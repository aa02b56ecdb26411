"""The functions this deployment runs. ``bucketfn run functions:app`` loads ``app``.

Add a function: write a module with its own ``Router`` and list it in ``routers``.
"""

from functions import csv_row_count, json_canonicalize, to_curated, to_staging
from runtime import App, Router

routers: list[Router] = [
    csv_row_count.router,
    json_canonicalize.router,
    to_staging.router,
    to_curated.router,
]
app = App(routers)

__all__ = ["app", "routers"]
