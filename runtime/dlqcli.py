"""``bucketfn dlq ls | show | replay | purge``: human tables by default, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

import orjson

from runtime.broker import Broker
from runtime.dlq import DeadLetters, Entry, parse_duration, select
from runtime.routing import load_app
from runtime.settings import Settings


def add_parser(sub: Any, default_app: str, app_help: str) -> None:
    """Register the ``dlq`` command group on the CLI's subparsers."""
    dlq = sub.add_parser("dlq", help="inspect, replay and purge dead-lettered events")
    cmds = dlq.add_subparsers(dest="dlq_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--app", default=default_app, help=app_help)
        p.add_argument("--json", action="store_true", help="machine-readable output")

    ls = cmds.add_parser("ls", help="grouped counts by function and fingerprint, then entries")
    common(ls)
    ls.add_argument("--function")
    ls.add_argument("--error", help="only entries whose error type or message contains TEXT")
    ls.add_argument("--since", type=parse_duration, help="only entries newer than e.g. 15m, 2h")

    show = cmds.add_parser("show", help="one entry in full: event, attempts, traceback")
    common(show)
    show.add_argument("id")

    for name, text in (
        ("replay", "send entries back to their function"),
        ("purge", "delete entries for good"),
    ):
        p = cmds.add_parser(name, help=text)
        common(p)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", action="append", dest="ids", default=[], metavar="ID")
        which.add_argument("--all", action="store_true")
        p.add_argument("--function")
        p.add_argument("--fingerprint")
        if name == "replay":
            p.add_argument("--dry-run", action="store_true", help="list what would be replayed")
        else:
            p.add_argument("--yes", action="store_true", required=True, help="confirm deletion")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _json(data: Any) -> None:
    _out(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        _out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _short(text: str | None, n: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def _render_ls(entries: list[Entry]) -> None:
    if not entries:
        _out("no dead-lettered entries")
        return
    groups = Counter((e.function or "(ingress)", e.fingerprint) for e in entries)
    sample = {(e.function or "(ingress)", e.fingerprint): e for e in entries}
    rows = [["FUNCTION", "FINGERPRINT", "COUNT", "ERROR"]]
    for (fn, fp), count in groups.most_common():
        e = sample[(fn, fp)]
        rows.append([fn, fp, str(count), _short(f"{e.error_type}: {e.error}")])
    _table(rows)
    _out("")
    rows = [["ID", "FUNCTION", "DEAD-LETTERED", "ATTEMPTS", "OBJECT", "REASON"]]
    for e in entries:
        rows.append(
            [
                e.id,
                e.function or "(ingress)",
                e.at.strftime("%Y-%m-%d %H:%M:%S") if e.at else "-",
                str(e.attempts),
                _short(f"{e.bucket}/{e.key}" if e.key else "-", 50),
                _short(e.reason, 50),
            ]
        )
    _table(rows)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty() and total > 1:
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Execute one ``dlq`` subcommand; returns the exit status."""
    app = load_app(args.app)
    async with Broker.connect(settings) as broker:
        store = DeadLetters(broker, settings, app)
        command = {"ls": _ls, "show": _show, "replay": _replay, "purge": _purge}
        return await command[args.dlq_command](store, args)


async def _ls(store: DeadLetters, args: argparse.Namespace) -> int:
    entries = await store.entries(
        select(function=args.function, error=args.error, since=args.since)
    )
    if args.json:
        _json([e.summary() for e in entries])
    else:
        _render_ls(entries)
    return 0


async def _show(store: DeadLetters, args: argparse.Namespace) -> int:
    found = await store.entries(select([args.id]))
    if not found:
        sys.stderr.write(f"bucketfn: no dead-letter entry {args.id!r}\n")
        return 1
    entry = found[0]
    if args.json:
        _json({**entry.summary(), "record": entry.record})
        return 0
    for k, v in entry.summary().items():
        _out(f"{k:12} {v}")
    for a in entry.record.get("invocation", {}).get("history", []):
        then = f"next try in {a['delay_ms']} ms" if a.get("delay_ms") else "no retry"
        _out(
            f"attempt {a['attempt']} at {a['at']}: {a['error_type']}: "
            f"{_short(a['message'], 80)} ({then})"
        )
    tb = entry.record.get("error", {}).get("traceback")
    if tb:
        _out("\n" + tb)
    return 0


def _plural(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


async def _replay(store: DeadLetters, args: argparse.Namespace) -> int:
    which = select(args.ids, function=args.function, fingerprint=args.fingerprint)
    report = await store.replay(which, dry_run=args.dry_run, progress=_progress)
    if args.json:
        _json({"replayed": report.replayed, "skipped": report.skipped, "dry_run": args.dry_run})
    else:
        verb = "would replay" if args.dry_run else "replayed"
        _out(f"{verb} {_plural(len(report.replayed))}")
        for ident, why in report.skipped.items():
            _out(f"skipped {ident}: {why}")
    return 0 if not report.skipped else 1


async def _purge(store: DeadLetters, args: argparse.Namespace) -> int:
    gone = await store.purge(select(args.ids, function=args.function, fingerprint=args.fingerprint))
    if args.json:
        _json({"purged": gone})
    else:
        _out(f"purged {_plural(len(gone))}")
    return 0
