"""The result record's conditional write: whatever lands between judgement and PUT, the
newest revision's record ends in place, and a success is never replaced."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from runtime import Body, ObjectInfo
from runtime.app.ledger import Standing
from runtime.core.errors import StorageError, Superseded
from runtime.engine.record import Record
from runtime.engine.seen import Seen
from runtime.testing import MemoryStorage

SOURCE = ("job-inputs", "k.csv")
RECORD = ("job-outputs", "f/k.csv/result.json")


class Gated(MemoryStorage):
    """Holds every record PUT at a gate until released, counting the ones refused."""

    def __init__(self) -> None:
        super().__init__(frozenset({"job-inputs"}))
        self.gates: list[asyncio.Event] = []
        self.refused = 0
        self.puts = 0

    async def put(self, bucket: str, key: str, body: Body, **kw: Any) -> ObjectInfo:
        if (bucket, key) == RECORD and self.gates:
            await self.gates.pop(0).wait()
        try:
            info = await super().put(bucket, key, body, **kw)
        except Superseded:
            self.refused += 1
            raise
        if (bucket, key) == RECORD:
            self.puts += 1
        return info


def _record(storage: MemoryStorage) -> Record:
    return Record(
        storage=storage,
        bucket=RECORD[0],
        key=RECORD[1],
        source_bucket=SOURCE[0],
        source_key=SOURCE[1],
    )


def _stamp(revision: str, sequencer: str | None, status: str = "ok") -> dict[str, str]:
    return Seen.stamp(function="f", status=status, revision=revision, sequencer=sequencer)


def _body(revision: str, status: str = "ok") -> bytes:
    return orjson.dumps({"revision": revision, "status": status})


def _held(storage: MemoryStorage) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(storage.objects[RECORD].data)
    return doc


@pytest.mark.parametrize("first", ["old", "new"])
async def test_two_revisions_judged_together_end_with_the_newest(first: str) -> None:
    # Both writers judged an empty key; whichever PUTs second finds the other's
    # record (412), judges again, and only the newer revision's record stays.
    storage = Gated()
    old = storage.put_bytes(*SOURCE, b"a")
    new = storage.put_bytes(*SOURCE, b"b")
    assert old.version_id and new.version_id
    gates = {"old": asyncio.Event(), "new": asyncio.Event()}
    order = ["old", "new"] if first == "old" else ["new", "old"]
    storage.gates = [gates[order[0]], gates[order[1]]]  # PUTs enter in this order
    rec = _record(storage)

    async def write(name: str, revision: str, sequencer: str) -> Standing:
        return await rec.write(_body(revision), metadata=_stamp(revision, sequencer), held=None)

    tasks = {
        order[0]: asyncio.create_task(write(order[0], *_rev(order[0], old, new))),
    }
    await asyncio.sleep(0)
    tasks[order[1]] = asyncio.create_task(write(order[1], *_rev(order[1], old, new)))
    await asyncio.sleep(0)
    gates[order[0]].set()
    await tasks[order[0]]
    gates[order[1]].set()
    await tasks[order[1]]

    assert _held(storage)["revision"] == new.version_id
    assert storage.refused == 1  # the second PUT met the first one's record
    assert tasks["new"].result() is Standing.PLACED
    assert tasks["old"].result() is (Standing.PLACED if first == "old" else Standing.LOST)
    assert storage.puts == (2 if first == "old" else 1)


def _rev(name: str, old: ObjectInfo, new: ObjectInfo) -> tuple[str, str]:
    info, sequencer = (old, "0A") if name == "old" else (new, "0B")
    assert info.version_id is not None
    return info.version_id, sequencer


async def test_a_success_is_never_replaced_by_a_failure_or_a_second_run() -> None:
    storage = Gated()
    src = storage.put_bytes(*SOURCE, b"a")
    assert src.version_id
    rec = _record(storage)
    first = await rec.write(_body(src.version_id), metadata=_stamp(src.version_id, "0A"), held=None)
    assert first is Standing.PLACED
    held = await storage.head(*RECORD)
    for status in ("ok", "dead-lettered"):
        standing = await rec.write(
            _body(src.version_id, status), metadata=_stamp(src.version_id, "0A", status), held=held
        )
        assert standing is Standing.DONE
    assert storage.puts == 1 and _held(storage)["status"] == "ok"


async def test_a_replay_that_succeeds_replaces_its_dead_letter_record() -> None:
    storage = Gated()
    src = storage.put_bytes(*SOURCE, b"a")
    assert src.version_id
    rec = _record(storage)
    failed = _stamp(src.version_id, "0A", "dead-lettered")
    standing = await rec.write(
        _body(src.version_id, "dead-lettered"), metadata=failed, held=None, placed=True
    )
    assert standing is Standing.NEWEST
    held = await storage.head(*RECORD)
    ok = await rec.write(_body(src.version_id), metadata=_stamp(src.version_id, "0A"), held=held)
    assert ok is Standing.PLACED and _held(storage)["status"] == "ok"


async def test_the_current_revision_wins_over_a_skewed_sequencer() -> None:
    # Two MinIO servers with skewed clocks: the current revision carries the lower
    # sequencer. The store's word outranks it, as in the promotions' ledger.
    storage = Gated()
    old = storage.put_bytes(*SOURCE, b"a")
    new = storage.put_bytes(*SOURCE, b"b")
    assert old.version_id and new.version_id
    rec = _record(storage)
    await rec.write(_body(old.version_id), metadata=_stamp(old.version_id, "0F"), held=None)
    held = await storage.head(*RECORD)
    standing = await rec.write(
        _body(new.version_id), metadata=_stamp(new.version_id, "01"), held=held, placed=True
    )
    assert standing is Standing.NEWEST and _held(storage)["revision"] == new.version_id
    # ...and the old revision, finishing again later, cannot take the key back.
    held = await storage.head(*RECORD)
    again = await rec.write(_body(old.version_id), metadata=_stamp(old.version_id, "0F"), held=held)
    assert again is Standing.LOST and _held(storage)["revision"] == new.version_id


async def test_an_old_revision_written_while_the_source_moved_on_is_interim() -> None:
    storage = Gated()
    old = storage.put_bytes(*SOURCE, b"a")
    storage.put_bytes(*SOURCE, b"b")
    assert old.version_id
    standing = await _record(storage).write(
        _body(old.version_id, "dead-lettered"),
        metadata=_stamp(old.version_id, "0A", "dead-lettered"),
        held=None,
        placed=True,
    )
    # In place for now (nothing newer has written yet), but no letter should follow.
    assert standing is Standing.INTERIM


class Contended(MemoryStorage):
    """Another writer lands a record before every PUT of this one."""

    landed = 0

    async def put(self, bucket: str, key: str, body: Body, **kw: Any) -> ObjectInfo:
        if (bucket, key) == RECORD:
            self.landed += 1  # other bytes each time: a new etag (no revision: always beaten)
            self.put_bytes(*RECORD, orjson.dumps({"landed": self.landed}), {})
        return await super().put(bucket, key, body, **kw)


async def test_a_key_that_never_settles_is_a_transient_error() -> None:
    storage = Contended(frozenset({"job-inputs"}))
    src = storage.put_bytes(*SOURCE, b"a")
    assert src.version_id
    with pytest.raises(StorageError, match="kept changing"):
        await _record(storage).write(
            _body(src.version_id), metadata=_stamp(src.version_id, "0A"), held=None
        )


async def test_records_without_a_revision_are_ordered_by_their_sequencers() -> None:
    # An event with neither version id nor etag: "" is no revision, never "the same one".
    storage = Gated()
    rec = _record(storage)
    assert await rec.write(_body("a"), metadata=_stamp("", "0A"), held=None) is Standing.PLACED
    later = await rec.write(_body("b"), metadata=_stamp("", "0B"), held=await storage.head(*RECORD))
    assert later is Standing.PLACED and _held(storage)["revision"] == "b"
    earlier = await rec.write(
        _body("c"), metadata=_stamp("", "01"), held=await storage.head(*RECORD)
    )
    assert earlier is Standing.LOST and _held(storage)["revision"] == "b"


class LostResponse(MemoryStorage):
    """The first record PUT lands, but its response is lost and the client sends it again
    (botocore's retries): the second try meets the first one's write."""

    retried = False

    async def put(self, bucket: str, key: str, body: Body, **kw: Any) -> ObjectInfo:
        info = await super().put(bucket, key, body, **kw)
        if (bucket, key) == RECORD and not self.retried:
            self.retried = True
            return await super().put(bucket, key, body, **kw)  # 412: it exists now
        return info


async def test_a_write_whose_retry_meets_itself_is_placed_not_a_duplicate() -> None:
    storage = LostResponse(frozenset({"job-inputs"}))
    src = storage.put_bytes(*SOURCE, b"a")
    assert src.version_id
    standing = await _record(storage).write(
        _body(src.version_id), metadata=_stamp(src.version_id, "0A"), held=None
    )
    assert storage.retried and standing is Standing.PLACED
    assert _held(storage)["revision"] == src.version_id


async def test_a_record_the_store_gives_no_etag_for_is_never_overwritten_blindly() -> None:
    storage = Gated()
    src = storage.put_bytes(*SOURCE, b"a")
    storage.put_bytes(*RECORD, b"{}")
    assert src.version_id
    held = await storage.head(*RECORD)
    assert held is not None
    blind = ObjectInfo(bucket=held.bucket, key=held.key, etag=None, version_id=None)
    with pytest.raises(StorageError, match="no ETag"):
        await _record(storage).write(
            _body(src.version_id), metadata=_stamp(src.version_id, "0A"), held=blind
        )
    assert storage.objects[RECORD].data == b"{}"


async def test_a_record_deleted_since_the_judgement_is_written_again() -> None:
    # If-Match on a key that is gone: S3 answers 404, and the writer judges an empty key.
    storage = Gated()
    src = storage.put_bytes(*SOURCE, b"a")
    storage.put_bytes(*RECORD, b"{}")
    assert src.version_id
    held = await storage.head(*RECORD)
    await storage.delete(*RECORD)
    standing = await _record(storage).write(
        _body(src.version_id), metadata=_stamp(src.version_id, "0A"), held=held
    )
    assert standing is Standing.PLACED and _held(storage)["revision"] == src.version_id
