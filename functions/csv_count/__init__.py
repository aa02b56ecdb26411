"""``csv_row_count``: count a CSV's records (quote-aware, gzip too) without loading it."""

from functions.csv_count.count import csv_row_count, router

__all__ = ["csv_row_count", "router"]
