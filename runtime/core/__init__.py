"""The core vocabulary: events, errors, names, records, letters, retry, settings, seams.

Plain data and pure functions. Nothing here does I/O or imports an adapter,
the engine or a surface (an import-linter contract keeps it so).
"""
