"""bucketfn new: the scaffolded project passes lint and tests as it stands (in a copy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import ConfigError
from runtime.cli.new import family_source, register_chart, register_family, unit_test_source

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGISTRY = '''"""The functions."""

from functions import csv_count, json_canonical, lake
from runtime import App, Router

routers: list[Router] = [csv_count.router, json_canonical.router, *lake.routers]
app = App(routers, versioned=lake.VERSIONED)
'''


def copy_project(dest: Path) -> Path:
    """The repository's files as they are now (tracked and new, not ignored) under ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


# The built tools (Helm, compose-check) the chart and compose tests run: a copy with
# HOME of its own still finds them where infra/local/*.sh cached them.
CACHE = Path(
    os.environ.get("BUCKETFN_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bucketfn"
)


def environment(root: Path, **extra: str) -> dict[str, str]:
    """The project's own packages first; the servers this run was pointed at (BUCKETFN_*)."""
    servers = {k: v for k, v in os.environ.items() if k.startswith("BUCKETFN_")}
    servers.pop("BUCKETFN_APP", None)
    path = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)}
    return {**servers, **path, "BUCKETFN_CACHE": str(CACHE), **extra}


def run(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command in the project at ``root``, importing its own packages."""
    return subprocess.run(
        list(args),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment(root),
    )


def scaffold(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(root, sys.executable, "-m", "runtime", "new", *args)


def test_the_registry_gains_an_import_and_a_router() -> None:
    changed = register_family(REGISTRY, "line_count")
    assert "from functions import csv_count, json_canonical, lake, line_count\n" in changed
    assert (
        "routers: list[Router] = [csv_count.router, json_canonical.router, *lake.routers, "
        "line_count.router]\n" in changed
    )
    assert changed.count("\n") == REGISTRY.count("\n")


def test_a_long_registry_wraps_as_ruff_format_does() -> None:
    name = "a_function_with_a_name_long_enough_to_push_every_line_past_the_limit"
    changed = register_family(REGISTRY, name)
    assert "from functions import (\n    a_function_with" in changed
    assert f"    {name}.router,\n]\n" in changed
    again = register_family(changed, "zeta")  # an exploded list stays exploded
    assert "    zeta.router,\n]\n" in again
    assert "    lake,\n    zeta,\n)\n" in again


@pytest.mark.parametrize("name", ["lake", "app", "routers", "Router"])
def test_a_name_the_registry_uses_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="already a name"):
        register_family(REGISTRY, name)


def test_a_registry_without_a_routers_list_is_left_to_the_user() -> None:
    with pytest.raises(ConfigError, match="by hand"):
        register_family("from runtime import App\napp = App([])\n", "x")


def test_sources_compile() -> None:
    for suffixes in ([], [".txt"], [".a", ".b"]):
        compile(family_source("f", "b", "p/", suffixes), "f.py", "exec")
        compile(unit_test_source("f", "b", "p/", suffixes), "t.py", "exec")


def tiny_project(root: Path) -> Path:
    (root / "functions" / "alpha").mkdir(parents=True)
    (root / "functions" / "__init__.py").write_text(
        "from functions import alpha\n"
        "from runtime import App, Router\n\n"
        "routers: list[Router] = [alpha.router]\n"
        "app = App(routers)\n"
    )
    (root / "functions" / "alpha" / "__init__.py").write_text(
        "from runtime import Router\n\n"
        "router = Router()\n\n\n"
        "@router.function(bucket='in', prefix='uploads/')\n"
        "async def alpha(event, ctx) -> None: ...\n"
    )
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["beta", "--bucket", "in", "--prefix", "uploads/x/"], "overlap: both run on"),
        (["alpha", "--bucket", "in", "--prefix", "other/"], "already exists"),
        (["Beta", "--bucket", "in", "--prefix", "p/"], "must match"),
        (["class", "--bucket", "in", "--prefix", "p/"], "Python keyword"),
        (["beta", "--bucket", "in", "--prefix", 'p"/'], "quotes"),
        (["beta", "--bucket", "a/b", "--prefix", "p/"], "invalid bucket"),
    ],
)
def test_a_bad_scaffold_is_refused_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = tiny_project(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*") if "__pycache__" not in p.parts)
    registry = (root / "functions" / "__init__.py").read_text()
    shown = scaffold(root, *args)
    assert shown.returncode == 2, shown.stdout + shown.stderr
    assert message in shown.stderr
    after = sorted(p.relative_to(root) for p in root.rglob("*") if "__pycache__" not in p.parts)
    assert after == before
    assert (root / "functions" / "__init__.py").read_text() == registry


SCAFFOLD = ("line_count", "--bucket", "job-inputs", "--prefix", "uploads/", "--suffix", ".txt")
WRITTEN = ("functions/line_count/__init__.py", "tests/unit/test_line_count.py")
# The unit tests that load the deployment's app (its routes, or the CLI on it): the ones
# a new function could upset. tests/e2e/test_routes_new.py runs all of them in a copy.
SEES_THE_APP = (
    "tests/unit/test_cli.py::test_routes_json_names_every_function_and_its_queue",
    "tests/unit/test_check.py",
    "tests/unit/test_check_lifecycle.py",
    "tests/unit/test_explain.py",
    "tests/unit/test_routing.py",
    "tests/unit/test_compose.py",
    "tests/unit/test_chart.py",  # the chart lists every function: `new` adds it there too
)


def scaffolded(dest: Path) -> Path:
    """A copy of the project with ``line_count`` scaffolded in it."""
    root = copy_project(dest)
    made = scaffold(root, *SCAFFOLD)
    assert made.returncode == 0, made.stdout + made.stderr
    assert all((root / p).is_file() for p in WRITTEN)
    return root


def pytest_in(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run pytest in the copy; its output, after asserting it passed."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={
            "PATH": f"{BIN}:/usr/bin:/bin",
            "PYTHONPATH": str(root),
            "HOME": str(root),
            "BUCKETFN_CACHE": str(CACHE),
            **(env or {}),
        },
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def test_the_generated_project_passes_lint_and_its_tests(tmp_path: Path) -> None:
    root = scaffolded(tmp_path)
    changed = [*WRITTEN, "functions/__init__.py"]
    for command in (
        [str(BIN / "ruff"), "check", "--no-cache", *changed],
        [str(BIN / "ruff"), "format", "--check", "--no-cache", *changed],
        # The whole program is type-checked; only what the scaffold wrote may report.
        [str(BIN / "mypy"), "--follow-imports=silent", *changed],
        [str(BIN / "lint-imports")],
        [sys.executable, "-m", "runtime", "routes", "check", "--offline"],
    ):
        done = run(root, *command)
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    listed = run(root, sys.executable, "-m", "runtime", "routes", "--json")
    assert '"function": "line_count"' in listed.stdout
    assert "1 passed" in pytest_in(root, "tests/unit/test_line_count.py")
    pytest_in(root, *SEES_THE_APP)


def test_the_chart_gets_the_new_function_after_its_last_one_and_nothing_else_moves() -> None:
    values = "app: x\n\n# the functions\nfunctions:\n  - name: a\n  - name: b\n\nconfig:\n  k: v\n"
    assert register_chart(values, "c") == (
        "app: x\n\n# the functions\nfunctions:\n  - name: a\n  - name: b\n  - name: c\n"
        "\nconfig:\n  k: v\n"
    )
    with pytest.raises(ConfigError, match="no top-level `functions:`"):
        register_chart("app: x\n", "c")
