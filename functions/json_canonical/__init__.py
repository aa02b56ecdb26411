"""``json_canonicalize``: rewrite JSON and JSON Lines as RFC 8785 canonical JSON."""

from functions.json_canonical.canonicalize import json_canonicalize, router

__all__ = ["json_canonicalize", "router"]
