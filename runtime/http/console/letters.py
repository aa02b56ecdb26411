"""Dead letters on the console: one entry in full, and replay or purge in two steps.

The semantics are ``bucketfn dlq``'s, done by the same
:class:`~runtime.ops.deadletters.DeadLetters`: a replay publishes each entry
to its function with a confirm before its dead-letter copy is removed, keeps
its attempts and gives it a fresh retry budget; a purge deletes for good.

Nothing changes in one click. ``POST /console/dead-letters/preview`` is the
dry run (``dlq replay --dry-run``; for a purge, the listing it would delete)
and answers with the entries it selected; the confirmation then names exactly
those ids, so entries that arrived in between are not swept along unseen. A
purge must also say ``confirm: true`` (the CLI's ``--yes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Self

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException

from runtime.http.console import views
from runtime.http.console.pages import html
from runtime.ops.deadletters import select

if TYPE_CHECKING:
    from jinja2 import Environment

    from runtime.http.console.hub import Hub
    from runtime.ops.deadletters import Entry, Filter

MAX_IDS = 1000  # one confirmation's worth; the jobs API takes as many per replay
FINGERPRINT = r"^[0-9a-f]{1,12}$"
EntryId = Annotated[str, Field(min_length=1, max_length=200)]


class Selection(BaseModel):
    """Entries named by id, or ``all`` those of a function and fingerprint."""

    model_config = ConfigDict(extra="forbid")

    ids: list[EntryId] = Field(default_factory=list, max_length=MAX_IDS)
    all: bool = False
    function: str | None = Field(default=None, max_length=63)
    fingerprint: str | None = Field(default=None, pattern=FINGERPRINT)

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not self.ids and not self.all:
            raise ValueError("name entries in `ids`, or select them with `all: true`")
        return self

    def which(self) -> Filter:
        """The filter ``bucketfn dlq`` would build from these options."""
        return select(self.ids, function=self.function or None, fingerprint=self.fingerprint)


class Preview(Selection):
    """A dry run of ``action``."""

    action: Literal["replay", "purge"]


class Confirmed(BaseModel):
    """The ids a preview listed: these and no others."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["replay", "purge"]
    ids: list[EntryId] = Field(min_length=1, max_length=MAX_IDS)
    confirm: bool = Field(default=False, description="Required for a purge (the CLI's --yes).")

    @model_validator(mode="after")
    def _confirmed(self) -> Self:
        if self.action == "purge" and not self.confirm:
            raise ValueError("purging deletes entries for good: send `confirm: true`")
        return self


def router(hub: Hub, env: Environment) -> APIRouter:
    """The dead-letter routes of the console."""
    routes = APIRouter(include_in_schema=False)
    listing, detail = env.get_template("letters.html"), env.get_template("letter.html")
    preview, done = env.get_template("preview.html"), env.get_template("done.html")

    @routes.get("/console/dead-letters", response_class=HTMLResponse)
    async def console_letters(
        everything: Annotated[bool, Query(alias="all")] = False,
    ) -> HTMLResponse:
        """Read the queues now (``all``: even past the automatic limit)."""
        letters = await hub.read_letters(force=everything)
        return html(listing.render(letters=letters, groups=views.groups(letters.entries)))

    @routes.get("/console/dead-letters/entry", response_class=HTMLResponse)
    async def console_letter(
        entry_id: Annotated[str, Query(alias="id", min_length=1, max_length=200)],
    ) -> HTMLResponse:
        """One entry in full: its event, every attempt, the traceback."""
        found = await hub.taken(select([entry_id]))
        if not found:
            raise HTTPException(404, f"no dead-letter entry {entry_id!r} (replayed or purged?)")
        entry = found[0]
        error = entry.record.get("error")
        traceback = error.get("traceback") if isinstance(error, dict) else None
        return html(detail.render(e=entry, traceback=traceback or None))

    @routes.post("/console/dead-letters/preview", response_class=HTMLResponse)
    async def console_preview(request: Preview) -> HTMLResponse:
        """What a replay or purge would do; nothing changes."""
        which = request.which()
        skipped: dict[str, str] = {}
        if request.action == "replay":
            async with hub.lock:
                report = await hub.store().replay(which, dry_run=True)
            chosen, skipped = report.entries, report.skipped
        else:
            chosen = await hub.taken(which)
        return html(
            preview.render(
                action=request.action,
                entries=chosen[:MAX_IDS],
                more=max(len(chosen) - MAX_IDS, 0),
                skipped=skipped,
                ids=[e.id for e in chosen[:MAX_IDS]],
            )
        )

    @routes.post("/console/dead-letters/confirm", response_class=HTMLResponse)
    async def console_confirm(request: Confirmed) -> HTMLResponse:
        """Replay or purge exactly the ids a preview listed."""
        which = select(request.ids)
        skipped: dict[str, str] = {}
        entries: list[Entry] = []
        async with hub.lock:
            store = hub.store()
            if request.action == "replay":
                report = await store.replay(which)
                changed, skipped, entries = report.replayed, report.skipped, report.entries
            else:
                changed = await store.purge(which)
        await hub.read_letters()  # the list, at once
        hub.refresh_soon()  # and the overview's counts
        missing = [i for i in request.ids if i not in changed and i not in skipped]
        return html(
            done.render(
                action=request.action,
                changed=changed,
                entries=entries,
                skipped=skipped,
                missing=missing,
            )
        )

    return routes
