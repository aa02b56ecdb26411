"""Test tiers by directory: unit (no servers), integration and e2e (real servers).

Integration and end-to-end tests run against the real MinIO and RabbitMQ that
`make test` starts. A missing server is a failure, never a skip: a green run
must mean the real path was exercised.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the tier its directory names."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(TIERS[tier])
