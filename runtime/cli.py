"""The ``bucketfn`` command: parse, load the app by import string, configure logs, run."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import orjson
import uvloop

from runtime import dlqcli, logs, provision, service
from runtime.errors import BucketfnError
from runtime.routing import load_app
from runtime.settings import Settings, load

DEFAULT_APP = "functions:app"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bucketfn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    app_help = "the app as module:attribute (env BUCKETFN_APP, default functions:app)"
    default_app = os.environ.get("BUCKETFN_APP", DEFAULT_APP)

    p_init = sub.add_parser("init", help="create buckets, notification rules and queues")
    p_init.add_argument("app", nargs="?", default=default_app, help=app_help)

    p_run = sub.add_parser("run", help="run the router and the functions' workers")
    p_run.add_argument("app", nargs="?", default=default_app, help=app_help)
    p_run.add_argument(
        "--function",
        action="append",
        dest="functions",
        help="run only this function's worker (repeatable)",
    )
    p_run.add_argument("--no-router", action="store_true", help="do not consume the ingress queue")
    p_run.add_argument("--router-only", action="store_true", help="run no function workers")

    p_routes = sub.add_parser("routes", help="list the routes and their queues")
    p_routes.add_argument("app", nargs="?", default=default_app, help=app_help)
    dlqcli.add_parser(sub, default_app, app_help)
    return parser


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    app = load_app(args.app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.serve(
        app,
        settings,
        stop,
        functions=set() if args.router_only else set(args.functions or []) or None,
        router=not args.no_router,
    )
    return 0


async def _init(args: argparse.Namespace, settings: Settings) -> int:
    report = await provision.init(load_app(args.app), settings)
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _routes(args: argparse.Namespace, settings: Settings) -> int:
    queues = settings.queues
    for r in load_app(args.app).routes:
        suffix = ",".join(r.suffixes) or "*"
        sys.stdout.write(
            f"{r.name}\t{r.bucket}/{r.prefix}*{suffix}\tqueue={queues.function(r.name)}"
            f"\tversion={r.version}\n"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bucketfn`` console command."""
    args = _parser().parse_args(argv)
    settings = load()
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "run":
            if settings.event_loop == "uvloop":
                # uvloop does the AMQP and HTTP socket work in C (measured in README).
                return uvloop.run(_run(args, settings))
            return asyncio.run(_run(args, settings))
        if args.command == "init":
            return asyncio.run(_init(args, settings))
        if args.command == "dlq":
            return asyncio.run(dlqcli.run(args, settings))
        return _routes(args, settings)
    except BucketfnError as exc:
        sys.stderr.write(f"bucketfn: {exc}\n")
        return 2
