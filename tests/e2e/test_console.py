"""The console in a real browser: Debian's headless Chromium, driven by Playwright.

A deployment of its own runs in this process as ``bucketfn run`` runs (feed and
metrics included) and ``bucketfn api`` serves the console beside it. The tests
do what a person does: open the page, give the token, drop files, click rows
and buttons, and read what the page says; each wait is for something to appear
on the page, never a fixed sleep. Screenshots land in ``$BUCKETFN_STATE/screenshots``.

A missing Chromium fails the tests (``make test`` installs it with
``infra/local/chromium.sh``); it never skips them.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.async_api import Browser, FilePayload, Page, async_playwright, expect

import functions
from tests.e2e.live import Live, runtime
from tests.integration.test_jobs_api import Api, serving
from tests.servers import unique

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BUCKETFN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(os.environ.get("BUCKETFN_STATE", ROOT / ".state")) / "screenshots"
SOON = 30_000  # ms: an upload's outcome on this 2-core machine takes well under a second

GOOD = b'id,note\n1,"two\nlines"\n2,plain\n'
BROKEN = b'a,b\n1,"oops\n'
FIXED = b'a,b\n1,"oops, fixed"\n2,fine\n3,also\n'


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    async with runtime(functions.app) as deployment:
        yield deployment


@pytest.fixture(scope="module")
async def api(live: Live) -> AsyncIterator[Api]:
    metrics = live.settings.metrics_address  # the API asks the runtime there for what runs now
    async with serving(live.settings, BUCKETFN_METRICS_ADDRESS=metrics) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `infra/local/chromium.sh install` "
            "(make test does) or set BUCKETFN_CHROMIUM",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh tab (its own session storage); uncaught script errors fail the test."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    tab = await context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    tab.on(
        "console",
        lambda msg: problems.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield tab
    await context.close()
    assert not problems, problems


async def signed_in(page: Page, api: Api) -> None:
    """Open the console, give the token, and wait until it follows the runtime's feed."""
    await page.goto(f"{api.url}/")
    await page.get_by_label("API token").fill(api.token)
    await page.get_by_role("button", name="Open").click()
    await expect(page.locator("#live")).to_have_text("live", timeout=SOON)
    await expect(page.locator('#overview tr[data-function="csv_row_count"]')).to_be_visible()


async def drop(page: Page, name: str, data: bytes) -> None:
    """Drop one file on the upload zone, as a person dragging it from their desktop does."""
    transfer = await page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "text/csv" }));
            return transfer;
        }""",
        [name, list(data)],
    )
    await page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


async def uploaded(page: Page, key: str, times: int = 1) -> None:
    done = page.locator(f'#uploads li[data-key="{key}"][data-state="done"]')
    await expect(done).to_have_count(times, timeout=SOON)
    await expect(done.first.locator("progress")).to_have_attribute("value", "100")


def invocation(page: Page, key: str, *outcomes: str) -> str:
    """The selector of ``key``'s rows in Recent invocations that ended in one of ``outcomes``."""
    ended = ",".join(f'[data-outcome="{o}"]' for o in outcomes)
    return f'#invocations tr[data-key="{key}"]:is({ended})'


async def shoot(page: Page, name: str, *, start: str | None = None) -> None:
    """Save the page (from the element ``start`` down, if given) as ``SHOTS/name.png``."""
    os.makedirs(SHOTS, exist_ok=True)
    path = str(SHOTS / f"{name}.png")
    if start is None:
        await page.screenshot(path=path, full_page=True)
        return
    # Page coordinates (the viewport may have scrolled to what was clicked).
    top: float = await page.locator(start).evaluate(
        "el => Math.max(el.getBoundingClientRect().top + window.scrollY - 12, 0)"
    )
    height: float = await page.evaluate("document.documentElement.scrollHeight")
    assert page.viewport_size is not None
    width = page.viewport_size["width"]
    await page.screenshot(
        path=path, full_page=True, clip={"x": 0, "y": top, "width": width, "height": height - top}
    )


async def dead_letters(api: Api, key: str) -> list[dict[str, object]]:
    """The deployment's dead letters for ``key``, as the jobs API lists them."""
    listing = (await api.http.get("/v1/dead-letters", params={"limit": 1000})).json()
    return [e for e in listing["entries"] if e["key"] == key]


async def test_nothing_is_shown_or_served_without_the_token(page: Page, api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:
        shell = await anonymous.get("/")
        assert shell.status_code == 200
        assert "script-src 'self'" in shell.headers["content-security-policy"]
        assert "csv_row_count" not in shell.text  # the page holds no data, only the form
        for method, path in [
            ("GET", "/console/updates"),
            ("GET", "/console/record?function=csv_row_count&key=uploads/x.csv"),
            ("GET", "/console/dead-letters"),
            ("POST", "/console/dead-letters/confirm"),
        ]:
            answer = await anonymous.request(method, path)
            assert answer.status_code == 401, (path, answer.text)
        assert (await anonymous.get("/console/static/console.js")).status_code == 200

    await page.goto(f"{api.url}/")
    await expect(page.get_by_label("API token")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()
    await page.get_by_label("API token").fill("not-the-token-of-this-api")
    await page.get_by_role("button", name="Open").click()
    await expect(page.locator("#login-error")).to_contain_text("the bearer token is not this API's")
    await expect(page.locator("#console")).to_be_hidden()

    # The right token, once: a reload in the same tab keeps it.
    await signed_in(page, api)
    await page.reload()
    await expect(page.locator("#live")).to_have_text("live", timeout=SOON)
    await expect(page.get_by_label("API token")).to_be_hidden()


async def test_a_dropped_csv_shows_its_invocation_and_its_row_count(
    page: Page, api: Api, live: Live
) -> None:
    await signed_in(page, api)
    folder = f"uploads/{unique('console')}/"
    await page.locator("#prefix").fill(folder)
    key = folder + "sales.csv"
    await drop(page, "sales.csv", GOOD)
    await uploaded(page, key)

    # Another deployment on the same MinIO (`make up`'s runtime) gets the same event and may
    # write the record first; this one then reports a duplicate, and the record is the same.
    row = page.locator(invocation(page, key, "ok", "duplicate"))
    await expect(row).to_have_count(1, timeout=SOON)
    await row.click()
    record = page.locator("#record")
    await expect(record.locator("pre.output")).to_contain_text('"rows": 2')
    await expect(record.locator(".facts")).to_contain_text("ok")
    fn = page.locator('#overview tr[data-function="csv_row_count"]')
    await expect(fn.locator(".outcomes")).to_contain_text(re.compile(r"(ok|duplicate) \d+"))

    # The record's link is presigned: the store itself serves it, no token needed.
    href = await record.locator("a.result-link").get_attribute("href")
    assert href is not None and href.startswith(live.settings.s3_endpoint)
    async with httpx.AsyncClient(timeout=30) as plain:
        document = orjson.loads((await plain.get(href)).content)
    assert document["status"] == "ok" and document["source"]["key"] == key
    assert document["output"] == {"rows": 2, "columns": ["id", "note"], "bytes": len(GOOD)}
    await shoot(page, "console-overview")


async def test_a_broken_csv_is_dead_lettered_then_replayed_after_a_fix(
    page: Page, api: Api
) -> None:
    await signed_in(page, api)
    folder = f"uploads/{unique('console')}/"
    await page.locator("#prefix").fill(folder)
    key = folder + "bad.csv"
    await drop(page, "bad.csv", BROKEN)
    await uploaded(page, key)
    await expect(page.locator(invocation(page, key, "dead-letter"))).to_have_count(1, timeout=SOON)

    # Dead letters: the entry with its error, in its group, counted in the overview.
    entry = page.locator(f'#letters tr.entry[data-key="{key}"]')
    await expect(entry).to_have_count(1, timeout=SOON)
    await expect(entry).to_contain_text("unterminated quoted field")
    group = page.locator('#letters tr.group[data-function="csv_row_count"]')
    await expect(group).to_contain_text("runtime.InputError")
    fn = page.locator('#overview tr[data-function="csv_row_count"]')
    await expect(fn.locator(".letters")).to_have_text("1", timeout=SOON)
    await expect(fn.locator(".oldest")).not_to_have_text("—")
    await entry.click()
    detail = page.locator("#letter")
    await expect(detail.locator(".traceback")).to_contain_text("InputError")
    await expect(detail.locator("pre.event")).to_contain_text(key)

    # A dry run first: it lists what would go and changes nothing.
    await group.get_by_role("button", name="Replay…").click()
    preview = detail.locator(".preview")
    await expect(preview.locator(".verdict")).to_have_text(re.compile(r"Would replay 1 entry"))
    await expect(preview.locator(f'tr[data-key="{key}"]')).to_have_count(1)
    assert [e["key"] for e in await dead_letters(api, key)] == [key]
    await expect(entry).to_have_count(1)
    await shoot(page, "console-dead-letters", start="#invocations-card")
    await preview.get_by_role("button", name="Cancel").click()
    await expect(preview).to_have_count(0)

    # Fix the input: upload the new version under the same key (the file picker this
    # time); its own event runs and succeeds.
    await page.locator("#files").set_input_files(
        files=FilePayload(name="bad.csv", mimeType="text/csv", buffer=FIXED)
    )
    await uploaded(page, key, times=2)
    await expect(page.locator(invocation(page, key, "ok", "duplicate"))).to_have_count(
        1, timeout=SOON
    )

    # Now replay for real: the entry leaves the dead-letter queue, and its invocation is
    # dropped as superseded — the fixed version's record stands.
    await group.get_by_role("button", name="Replay…").click()
    await preview.get_by_role("button", name="Replay 1 entry").click()
    await expect(detail.locator(".done h3")).to_have_text("Replayed 1 entry")
    await expect(entry).to_have_count(0, timeout=SOON)
    await expect(fn.locator(".letters")).to_have_text("0", timeout=SOON)
    replayed = page.locator(invocation(page, key, "superseded"))
    await expect(replayed).to_have_count(1, timeout=SOON)
    assert await dead_letters(api, key) == []
    await replayed.click()
    await expect(page.locator("#record pre.output")).to_contain_text('"rows": 3')


async def test_purge_shows_what_it_would_delete_and_asks_first(page: Page, api: Api) -> None:
    await signed_in(page, api)
    folder = f"uploads/{unique('console')}/"
    await page.locator("#prefix").fill(folder)
    key = folder + "purge-me.csv"
    await drop(page, "purge-me.csv", BROKEN)
    await uploaded(page, key)
    entry = page.locator(f'#letters tr.entry[data-key="{key}"]')
    await expect(entry).to_have_count(1, timeout=SOON)

    detail = page.locator("#letter")
    await entry.click()
    await detail.get_by_role("button", name="Purge…").click()
    preview = detail.locator(".preview")
    await expect(preview.locator(".verdict")).to_have_text(re.compile(r"Would purge 1 entry"))
    await expect(preview).to_contain_text("deleted for good")
    await preview.get_by_role("button", name="Cancel").click()
    await expect(preview).to_have_count(0)
    assert len(await dead_letters(api, key)) == 1  # cancelled: nothing changed

    await entry.click()
    await detail.get_by_role("button", name="Purge…").click()
    await preview.get_by_role("button", name="Purge 1 entry").click()
    await expect(detail.locator(".done h3")).to_have_text("Purged 1 entry")
    await expect(entry).to_have_count(0, timeout=SOON)
    assert await dead_letters(api, key) == []
