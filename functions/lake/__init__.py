"""The medallion lake: ``raw`` → ``staging`` (validated Parquet) → ``curated`` (rollups).

``to_staging`` checks each raw file against its dataset's contract and
promotes typed Parquet; ``to_curated`` folds staging files into the dataset's
totals. ``python -m functions.lake.demo`` uploads a realistic raw file.
"""

from functions.lake import curated, staging

VERSIONED = ("raw",)
"""The raw layer keeps every version, so a stale event still reads its own bytes."""

routers = [staging.router, curated.router]

__all__ = ["VERSIONED", "curated", "routers", "staging"]
