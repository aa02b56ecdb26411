"""The functions this deployment runs. ``bucketfn run functions:app`` loads ``app``.

One sub-package per family; add a function by writing a module with its own
``Router`` and listing the router here.
"""

from functions import csv_count, json_canonical, lake
from runtime import App, Router

routers: list[Router] = [csv_count.router, json_canonical.router, *lake.routers]
app = App(routers, versioned=lake.VERSIONED)

__all__ = ["app", "routers"]
