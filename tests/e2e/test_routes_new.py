"""One test, two stacks, on the real one; and a scaffolded project, whole, on both.

The unit tier runs function tests in memory. Here the same test files run with
``BUCKETFN_TEST_STACK=real``: the shipped ``json_canonicalize`` tests, and the
test ``bucketfn new`` writes, in a copy of the project where every unit test
must still pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.servers import make_settings, require_minio, require_rabbitmq, s3_client
from tests.unit.test_new import ROOT, pytest_in, scaffolded

# The real stack reads the servers from BUCKETFN_* (a slot's stack moves their ports).
REAL = {
    "BUCKETFN_TEST_STACK": "real",
    **{k: v for k, v in os.environ.items() if k.startswith("BUCKETFN_")},
}


@pytest.fixture(autouse=True)
async def servers() -> None:
    settings = make_settings()
    await require_rabbitmq(settings)
    require_minio(s3_client(settings))


def test_a_shipped_function_s_unit_tests_pass_on_the_real_stack() -> None:
    shown = pytest_in(ROOT, "-s", "tests/unit/test_json_canonicalize.py", env=REAL)
    assert "6 passed" in shown
    # The real runtime's own log lines: the events came through MinIO and RabbitMQ.
    assert "routed" in shown and "invocation dead-lettered" in shown


def test_a_scaffolded_project_passes_every_unit_test_and_its_test_on_both_stacks(
    tmp_path: Path,
) -> None:
    root = scaffolded(tmp_path)
    pytest_in(
        root,
        "-m",
        "not integration and not e2e",
        "--ignore=tests/unit/test_new.py",  # it copies and scaffolds a project itself
        # The copy has sources, not build products: the native scanner is not built
        # there, and its own tests (which fail when it is missing) belong to the checkout.
        "--ignore=tests/unit/test_native_scan.py",
        "--ignore=tests/unit/test_canonical.py",  # its native runs need the built Rust core
        "tests/unit",
    )
    real = pytest_in(root, "-s", "tests/unit/test_line_count.py", env=REAL)
    assert "1 passed" in real and "routed" in real
