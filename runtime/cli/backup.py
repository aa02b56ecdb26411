"""``bucketfn backup`` and ``bucketfn restore``: the buckets, with their versions, to another
S3 endpoint and back (how, and what is and is not carried over: :mod:`runtime.ops.backup`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.app.router import load_app
from runtime.cli import output
from runtime.cli.options import APP, JSON, settings_of
from runtime.ops.backup import endpoint, transfer
from runtime.ops.provision import managed_buckets

if TYPE_CHECKING:
    from runtime.core.settings import Settings

BUCKETS = Annotated[
    list[str] | None,
    typer.Option(
        "--bucket", help="Only this bucket (repeatable; default: every bucket `init` manages)."
    ),
]
PREFIXES = Annotated[
    list[str] | None,
    typer.Option("--prefix", help="Only keys under this prefix, in every bucket (repeatable)."),
]
ACCESS_KEY = Annotated[
    str | None,
    typer.Option(
        envvar="BUCKETFN_BACKUP_S3_ACCESS_KEY",
        help="The other endpoint's access key (default: BUCKETFN_S3_ACCESS_KEY's).",
    ),
]
SECRET_KEY = Annotated[
    str | None,
    typer.Option(
        envvar="BUCKETFN_BACKUP_S3_SECRET_KEY",
        help="The other endpoint's secret key (default: BUCKETFN_S3_SECRET_KEY's).",
        show_default=False,
    ),
]
ENDPOINT_ENV = "BUCKETFN_BACKUP_S3_ENDPOINT"


def register(cli: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to the root command."""
    cli.command("backup")(backup_command)
    cli.command("restore")(restore_command)


def backup_command(
    ctx: typer.Context,
    to: Annotated[
        str, typer.Option("--to", envvar=ENDPOINT_ENV, help="The backup's S3 endpoint URL.")
    ],
    bucket: BUCKETS = None,
    prefix: PREFIXES = None,
    access_key: ACCESS_KEY = None,
    secret_key: SECRET_KEY = None,
    app: APP = "functions:app",
    json: JSON = False,
) -> None:
    """Copy the buckets to another S3 endpoint, every version of a versioned one in order.

    Incremental: what the backup already holds is skipped. Nothing is deleted there.
    """
    settings = settings_of(ctx)
    other = endpoint(settings, to, access_key, secret_key)
    names = bucket or managed_buckets(load_app(app), settings)
    _run(settings, other, names, prefix, required=bool(bucket), json=json)


def restore_command(
    ctx: typer.Context,
    from_: Annotated[
        str, typer.Option("--from", envvar=ENDPOINT_ENV, help="The backup's S3 endpoint URL.")
    ],
    bucket: BUCKETS = None,
    prefix: PREFIXES = None,
    access_key: ACCESS_KEY = None,
    secret_key: SECRET_KEY = None,
    app: APP = "functions:app",
    json: JSON = False,
) -> None:
    """Copy the buckets back from a backup, every version in order; then `bucketfn backfill`.

    The restored objects are new writes: their events (or a backfill) run the
    functions on them again, so derived buckets need not be restored at all.
    """
    settings = settings_of(ctx)
    other = endpoint(settings, from_, access_key, secret_key)
    names = bucket or managed_buckets(load_app(app), settings)
    # Result records first: restored after the sources, they would be newer than the
    # restored objects, and backfill would take them (about old versions) for current.
    names.sort(key=lambda name: name != settings.output_bucket)
    _run(other, settings, names, prefix, required=bool(bucket), json=json)


def _run(
    source: Settings,
    target: Settings,
    buckets: list[str],
    prefixes: list[str] | None,
    *,
    required: bool,
    json: bool,
) -> None:
    tallies = asyncio.run(
        transfer(source, target, buckets, prefixes=prefixes or [""], required=required)
    )
    rows = {
        name: None
        if t is None
        else {
            "versioned": t.versioned,
            "keys": t.keys,
            "copied": t.copied,
            "delete_markers": t.markers,
            "already_there": t.present,
            "bytes": t.bytes,
        }
        for name, t in tallies.items()
    }
    if json:
        output.emit_json({"from": source.s3_endpoint, "to": target.s3_endpoint, "buckets": rows})
        return
    output.table(
        ["BUCKET", "VERSIONED", "KEYS", "COPIED", "DELETE MARKERS", "ALREADY THERE", "BYTES"],
        [
            [name, "-", "missing at the source", "", "", "", ""]
            if r is None
            else [
                name,
                "yes" if r["versioned"] else "no",
                f"{r['keys']:,}",
                f"{r['copied']:,}",
                f"{r['delete_markers']:,}",
                f"{r['already_there']:,}",
                f"{r['bytes']:,}",
            ]
            for name, r in rows.items()
        ],
        title=f"{source.s3_endpoint} → {target.s3_endpoint}",
    )
