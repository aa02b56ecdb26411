"""Polling mode on SeaweedFS: a real S3 store without bucket notifications.

There the reconciliation sweep alone drives the functions. These tests need a
SeaweedFS (``infra/local/seaweedfs.sh start``) besides RabbitMQ, so they are
collected only when ``BUCKETFN_POLLING=1``, which ``make polling`` sets after
starting it. Plain ``pytest`` (what ``make test`` runs) leaves this directory
out: there no SeaweedFS runs, and a test that cannot reach its server fails —
it never skips. Naming a file here explicitly still collects it.
"""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("BUCKETFN_POLLING") == "1"

# Relative to this directory; consulted for every path pytest reaches by
# walking it, so `pytest` and `pytest tests/polling` collect nothing here.
collect_ignore_glob = [] if ENABLED else ["test_*.py"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the polling tests measured (``record_property``) after the run."""
    lines = [
        f"{report.nodeid.rpartition('::')[2]}: {name} = {value}"
        for report in terminalreporter.getreports("passed")
        if "tests/polling/" in report.nodeid
        for name, value in report.user_properties
    ]
    if lines:
        terminalreporter.section("polling mode on SeaweedFS: measured")
        for line in lines:
            terminalreporter.write_line(line)
