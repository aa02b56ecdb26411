"""``bucketfn new``: scaffold a function family, register it, and write its test.

What it writes passes ``make lint`` and ``make test`` as it stands: the
function and its test are formatted as ``ruff format`` would, the router is
added to ``functions/__init__.py`` in place (its import kept sorted), and a
route that ``routes check`` would fault (an undeclared overlap, a cycle) is
refused before anything is written.
"""

from __future__ import annotations

import ast
import json
import keyword
import sys
from pathlib import Path
from typing import Annotated

import typer

from runtime.app.check import static_findings
from runtime.app.router import App, Route, Router, load_app
from runtime.cli import output
from runtime.cli.options import APP, settings_of
from runtime.core import names
from runtime.core.errors import ConfigError
from runtime.core.events import ObjectEvent

LINE = 100  # ruff's line-length in pyproject.toml


def register(cli: typer.Typer) -> None:
    """Add ``new`` to the root command."""
    cli.command("new")(new_command)


def new_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The function's name: [a-z][a-z0-9_]*.")],
    bucket: Annotated[str, typer.Option(help="The bucket that triggers it.")],
    prefix: Annotated[str, typer.Option(help="The key prefix that triggers it (may be '').")],
    suffix: Annotated[
        list[str] | None, typer.Option(help="Only keys ending with this (repeatable).")
    ] = None,
    root: Annotated[
        Path, typer.Option(help="The project: the directory holding functions/ and tests/.")
    ] = Path(),
    app: APP = "functions:app",
) -> None:
    """Scaffold functions/NAME/ with a function on BUCKET/PREFIX, register it, write its test.

    The test runs on the in-memory harness, or on real MinIO and RabbitMQ with
    BUCKETFN_TEST_STACK=real. Then: `bucketfn init` and restart the runtime.
    """
    suffixes = [s for s in suffix or [] if s]
    _plain(name=name, bucket=bucket, prefix=prefix, suffixes=suffixes)
    root = root.resolve()
    package, test = root / "functions" / name, root / "tests" / "unit" / f"test_{name}.py"
    registry = root / "functions" / "__init__.py"
    if not registry.is_file():
        raise ConfigError(f"{registry} not found: --root must name the project")
    for path in (package, package.with_suffix(".py"), test):
        if path.exists():
            raise ConfigError(f"{path} already exists")
    sys.path.insert(0, str(root))  # the project's own functions, not an installed copy
    application = load_app(app)
    route = _route(name, bucket, prefix, suffixes)
    _refuse_problems(application, route, settings_of(ctx).output_bucket)
    registered = register_family(registry.read_text(encoding="utf-8"), name)
    chart = root / CHART_VALUES
    charted = register_chart(chart.read_text(encoding="utf-8"), name) if chart.is_file() else None
    package.mkdir()
    (package / "__init__.py").write_text(family_source(name, bucket, prefix, suffixes), "utf-8")
    test.parent.mkdir(parents=True, exist_ok=True)
    test.write_text(unit_test_source(name, bucket, prefix, suffixes), "utf-8")
    registry.write_text(registered, encoding="utf-8")
    written = [("wrote", package / "__init__.py"), ("wrote", test), ("updated", registry)]
    if charted is not None:
        chart.write_text(charted, encoding="utf-8")
        written.append(("updated", chart))
    for verb, path in written:
        output.out.print(f"{verb} {path.relative_to(root)}", markup=False, highlight=False)
    output.out.print(
        "next: make lint unit · BUCKETFN_TEST_STACK=real .venv/bin/pytest "
        f"tests/unit/test_{name}.py · bucketfn init, then restart the runtime",
        markup=False,
        highlight=False,
    )


def _plain(*, name: str, bucket: str, prefix: str, suffixes: list[str]) -> None:
    if not names.valid_function_name(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"function name {name!r} must match [a-z][a-z0-9_]* (max 63 chars), not be a "
            f"Python keyword, and not be one of {sorted(names.RESERVED_NAMES)}"
        )
    for what, value in (("bucket", bucket), ("prefix", prefix), *(("suffix", s) for s in suffixes)):
        if any(c in value for c in "\"'\\") or not value.isprintable():
            raise ConfigError(
                f"{what} {value!r}: quotes, backslashes and control characters are not "
                "scaffolded; write such a route by hand"
            )


async def _placeholder(event: ObjectEvent, ctx: object) -> None:
    """Stands in for the handler that is not written yet, to check its route."""


def _route(name: str, bucket: str, prefix: str, suffixes: list[str]) -> Route:
    router = Router()
    router.function(bucket=bucket, prefix=prefix, suffix=suffixes, name=name)(_placeholder)
    return router.routes[0]


def _refuse_problems(application: App, route: Route, output_bucket: str) -> None:
    """Refuse a route ``routes check`` would fault, so the project still passes lint."""
    combined = Router()
    combined.routes = [*application.routes, route]
    together = App([combined], versioned=application.versioned)  # refuses a taken name
    problems = [
        f
        for f in static_findings(together, output_bucket)
        if f.problem and route.name in f.functions
    ]
    if problems:
        raise ConfigError(
            f"{route.name} would not pass `bucketfn routes check`: "
            + "; ".join(f"{f.kind}: {f.message}" for f in problems)
        )


def _literal(value: str) -> str:
    # Only quote-free, backslash-free text gets here: JSON's string is Python's, in
    # the double quotes ruff format wants.
    return json.dumps(value, ensure_ascii=False)


def _call(head: str, args: list[str], indent: str = "", tail: str = "") -> str:
    """``head(args)tail`` on one line if it fits, else one argument per line (ruff's style)."""
    flat = f"{indent}{head}({', '.join(args)}){tail}"
    if len(flat) <= LINE:
        return flat
    inner = "".join(f"{indent}    {a},\n" for a in args)
    return f"{indent}{head}(\n{inner}{indent}){tail}"


def _decorator(bucket: str, prefix: str, suffixes: list[str]) -> str:
    args = [f"bucket={_literal(bucket)}", f"prefix={_literal(prefix)}"]
    if len(suffixes) == 1:
        args.append(f"suffix={_literal(suffixes[0])}")
    elif suffixes:
        args.append(f"suffix=({', '.join(map(_literal, suffixes))})")
    return "@" + _call("router.function", args)


def family_source(name: str, bucket: str, prefix: str, suffixes: list[str]) -> str:
    """The family package's ``__init__.py``: one function, streamed, typed."""
    signature = _call(
        f"async def {name}", ["event: ObjectEvent", "ctx: Context"], tail=" -> dict[str, int]:"
    )
    return f'''"""A function scaffolded by ``bucketfn new``: make it yours."""

from runtime import Context, ObjectEvent, Router

router = Router()


{_decorator(bucket, prefix, suffixes)}
{signature}
    """Count the object's bytes and lines, streamed (never whole in memory)."""
    size = lines = 0
    async for chunk in ctx.read(event):
        size += len(chunk)
        lines += chunk.count(b"\\n")
    return {{"bytes": size, "lines": lines}}  # becomes result.json's "output"


__all__ = {json.dumps(sorted([name, "router"]))}
'''


def unit_test_source(name: str, bucket: str, prefix: str, suffixes: list[str]) -> str:
    """A test of the function that runs on either stack (``BUCKETFN_TEST_STACK``)."""
    example = "example" + (suffixes[0] if suffixes else ".txt")
    imported = _import_line(f"functions.{name}", [name])
    opening = _call("async with open_stack", [name], "    ", " as opened:")
    key = _call("key = stack.key", [_literal(prefix), _literal(example)], "    ")
    run = _call(
        "result = await stack.run",
        [name, 'b"one\\ntwo\\n"', "key=key", f"bucket={_literal(bucket)}"],
        "    ",
    )
    return f'''"""Tests of a scaffolded function.

In memory by default; on real MinIO and RabbitMQ with BUCKETFN_TEST_STACK=real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

{imported}from runtime.testing import Stack, open_stack


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
{opening}
        yield opened


async def test_counts_bytes_and_lines(stack: Stack) -> None:
{key}
{run}
    assert result.status == "ok"
    assert result.output == {{"bytes": 8, "lines": 2}}
'''


CHART_VALUES = Path("infra/helm/bucketfn/values.yaml")
"""The Helm chart's values: one worker Deployment per function it lists."""


def register_chart(source: str, name: str) -> str:
    """The chart's values with ``- name: NAME`` after the last entry of ``functions:``.

    Line-based, so the file's comments and layout stay as they are.
    """
    lines = source.splitlines(keepends=True)
    try:
        start = lines.index("functions:\n")
    except ValueError:
        raise ConfigError(
            f"{CHART_VALUES} has no top-level `functions:` list: add `- name: {name}` by hand"
        ) from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # keep the blank lines after the list where they were
    return "".join([*lines[:end], f"  - name: {name}\n", *lines[end:]])


def register_family(source: str, name: str) -> str:
    """``functions/__init__.py`` with ``name`` imported and ``name.router`` in ``routers``."""
    tree = ast.parse(source)
    taken = {t.id for node in tree.body for t in ast.walk(node) if isinstance(t, ast.Name)}
    imports = [
        n
        for n in tree.body
        if isinstance(n, ast.ImportFrom) and n.module == "functions" and n.level == 0
    ]
    taken |= {a.asname or a.name for n in imports for a in n.names}
    if name in taken:
        raise ConfigError(f"{name!r} is already a name in functions/__init__.py")
    listing = next(
        (
            n
            for n in tree.body
            if isinstance(n, ast.Assign | ast.AnnAssign) and _assigns(n, "routers")
        ),
        None,
    )
    if not imports or listing is None:
        raise ConfigError(
            "functions/__init__.py has no `from functions import ...` and `routers = [...]` "
            f"to extend: import {name} and add {name}.router to routers by hand"
        )
    lines = source.splitlines(keepends=True)
    value = listing.value
    assert isinstance(value, ast.List)  # _assigns checked it
    elements = [ast.get_source_segment(source, e) or "" for e in value.elts]
    # ast's columns count UTF-8 bytes.
    head = lines[listing.lineno - 1].encode()[: value.col_offset].decode()
    exploded = listing.end_lineno != listing.lineno
    edits = [
        (imports[0], _import_line("functions", [*(a.name for a in imports[0].names), name])),
        (listing, _list(head, [*elements, f"{name}.router"], exploded=exploded)),
    ]
    for node, text in sorted(edits, key=lambda e: -e[0].lineno):
        start, end = node.lineno - 1, node.end_lineno or node.lineno
        if lines[end - 1].encode()[node.end_col_offset or 0 :].strip():
            raise ConfigError(f"line {end} of functions/__init__.py goes on after the statement")
        lines[start:end] = [text]
    return "".join(lines)


def _assigns(node: ast.Assign | ast.AnnAssign, target: str) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    hit = any(isinstance(t, ast.Name) and t.id == target for t in targets)
    return hit and isinstance(node.value, ast.List)


def _import_line(module: str, members: list[str]) -> str:
    ordered = sorted(dict.fromkeys(members))  # isort's order for lower-case module names
    flat = f"from {module} import {', '.join(ordered)}\n"
    if len(flat) <= LINE + 1:
        return flat
    return f"from {module} import (\n" + "".join(f"    {m},\n" for m in ordered) + ")\n"


def _list(head: str, elements: list[str], *, exploded: bool) -> str:
    flat = f"{head}[{', '.join(elements)}]\n"
    if len(flat) <= LINE + 1 and not exploded:
        return flat
    return f"{head}[\n" + "".join(f"    {e},\n" for e in elements) + "]\n"
