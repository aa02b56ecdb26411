"""The CLI as a person and a script meet it: help text, --json, a closed pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def bucketfn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_help_is_written_for_people() -> None:
    shown = bucketfn("--help")
    assert shown.returncode == 0, shown.stderr
    assert "Run Python functions on every object" in shown.stdout
    assert "load the app by import string" not in shown.stdout  # not a module docstring
    for command in ("run", "init", "routes", "dlq", "new"):
        assert command in shown.stdout
    dlq = bucketfn("dlq", "--help")
    assert "replay" in dlq.stdout and "purge" in dlq.stdout


def test_routes_json_names_every_function_and_its_queue() -> None:
    listed = bucketfn("routes", "--json", env={"BUCKETFN_QUEUE_PREFIX": "cli-test", "PATH": ""})
    assert listed.returncode == 0, listed.stderr
    rows = orjson.loads(listed.stdout)
    by_name = {r["function"]: r for r in rows}
    assert by_name["csv_row_count"]["queue"] == "cli-test.fn.csv_row_count"
    assert by_name["csv_row_count"]["suffixes"] == [".csv", ".csv.gz"]
    # A superset: `bucketfn new` adds functions, and this test must still pass after it.
    assert set(by_name) >= {"csv_row_count", "json_canonicalize", "to_staging", "to_curated"}


def test_routes_ls_is_the_listing_and_routes_has_its_commands() -> None:
    env = {"BUCKETFN_QUEUE_PREFIX": "cli-test", "PATH": ""}
    assert (
        bucketfn("routes", "ls", "--json", env=env).stdout
        == bucketfn("routes", "--json", env=env).stdout
    )
    shown = bucketfn("routes", "--help")
    for command in ("ls", "explain", "check"):
        assert command in shown.stdout


def test_a_wrong_app_is_a_clear_error_not_a_traceback() -> None:
    shown = bucketfn("routes", "--app", "no_such_module:app")
    assert shown.returncode == 2
    assert "cannot import 'no_such_module'" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # Enough routes that the output overflows the pipe's buffer after the reader left.
    (tmp_path / "many.py").write_text(
        "from runtime import App, Router\n"
        "router = Router()\n"
        "for i in range(3000):\n"
        "    async def f(event, ctx): return None\n"
        "    router.function(bucket='b', prefix=f'p{i}/', name=f'f{i}')(f)\n"
        "app = App([router])\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "routes", "--app", "many:app"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = proc.wait(timeout=60)
    assert b"FUNCTION" in first
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141


def test_a_usage_error_is_a_message_not_a_traceback() -> None:
    # typer carries its own copy of click, so catching click's usage errors missed
    # typer's: every bad option printed a traceback.
    shown = bucketfn("backfill", "--function", "no_such_function")
    assert shown.returncode == 2
    assert "no route matches" in shown.stderr
    assert "Traceback" not in shown.stderr
