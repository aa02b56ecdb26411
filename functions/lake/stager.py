"""The raw → staging step without I/O: records in, typed Parquet and a rejects file out.

A :class:`Stager` is fed the bytes of one raw file in chunks. Each record is
validated against the dataset's contract; invalid records and duplicates of an
earlier record's key go to the rejects file as JSON Lines
(``{"line", "reason", "row"}``); valid ones are batched and written as Parquet
row groups. Memory is one batch of rows plus one digest per distinct key.

Deduplication keeps a key's first row. Keys are remembered as 128-bit BLAKE2b
digests held as Python ints in a set — ~100 bytes a key, table included, however
long the key (measured: 96 B at 1.4 million keys). At 10⁹ keys the chance of
any collision, which would drop a valid row, is below 10⁻²⁰. Memory therefore
grows with the distinct keys of one file, ~1 GB per 10 million; beyond that,
partition the rows by digest into spools on disk and deduplicate each alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Literal

import orjson
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]  # no types without pyarrow-stubs
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from functions.lake.contracts import Binding, Contract, Row
from functions.lake.rows import CsvRows, JsonLines
from runtime import InputError

__all__ = ["BATCH_ROWS", "ROW_GROUP_ROWS", "Counts", "Stager"]

BATCH_ROWS = 50_000
"""Rows held as Python objects before they become Arrow arrays (~20 MB for orders)."""

ROW_GROUP_ROWS = 250_000
"""Rows per Parquet row group: large enough for readers to skip well, small enough to hold."""

MAX_RAW = 64 * 1024  # characters of an unparseable JSON line kept in the rejects file
MAX_IGNORED = 100  # names of unknown JSON keys remembered for the result


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """What one file came to. ``read == written + rejected + duplicates``."""

    read: int
    written: int
    rejected: int
    duplicates: int
    ignored_columns: tuple[str, ...]


class Stager:
    """Validate, deduplicate and write one raw file; feed it chunks, then ``finish``."""

    def __init__(
        self,
        contract: Contract,
        *,
        form: Literal["csv", "jsonl"],
        parquet: IO[bytes],
        rejects: IO[bytes],
        batch_rows: int = BATCH_ROWS,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self.contract = contract
        self._csv = CsvRows() if form == "csv" else None
        self._jsonl = JsonLines() if form == "jsonl" else None
        self._binding: Binding | None = None
        self._names = frozenset(contract.names)
        self._ignored: dict[str, None] = {}
        self._schema = contract.schema().with_metadata(
            {"bucketfn-contract": f"{contract.dataset}@{contract.fingerprint}"}
        )
        self._writer = pq.ParquetWriter(parquet, self._schema, compression="zstd")
        self._rejects = rejects
        self._seen: set[int] = set()
        self._key = contract.key_positions
        self._rows: list[Row] = []
        self._batches: list[pa.RecordBatch] = []
        self._batched = 0
        self._batch_rows = batch_rows
        self._row_group_rows = row_group_rows
        self.read = self.written = self.rejected = self.duplicates = 0

    def feed(self, chunk: bytes) -> None:
        """Process the records ``chunk`` completes."""
        if self._csv is not None:
            self._csv_records(self._csv.feed(chunk))
        elif self._jsonl is not None:
            self._json_records(self._jsonl.feed(chunk))

    def finish(self) -> Counts:
        """Process the end of the file, complete the Parquet file, and count."""
        if self._csv is not None:
            self._csv_records(self._csv.finish())
            if self._binding is None:
                raise InputError("the file is empty: no header line")
        elif self._jsonl is not None:
            self._json_records(self._jsonl.finish())
        self._flush(row_group=True)
        self._writer.close()
        return Counts(
            read=self.read,
            written=self.written,
            rejected=self.rejected,
            duplicates=self.duplicates,
            ignored_columns=tuple(self._ignored),
        )

    def close(self) -> None:
        """Release the Parquet writer after a failure (finish closes it otherwise)."""
        self._writer.close()

    def _csv_records(self, records: list[tuple[int, list[str]]]) -> None:
        binding = self._binding
        for line, values in records:
            if binding is None:
                binding = self._binding = self.contract.bind(values)
                self._ignored.update(dict.fromkeys(binding.ignored))
                continue
            self.read += 1
            result = binding.validate(values)
            if isinstance(result, str):
                self._reject(line, result, binding.as_mapping(values))
            elif not self._is_new(result):
                self._duplicate(line, binding.as_mapping(values))

    def _json_records(self, records: list[tuple[int, str]]) -> None:
        for line, text in records:
            self.read += 1
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                self._reject(line, f"invalid JSON: {exc}", {"_raw": text[:MAX_RAW]})
                continue
            if not isinstance(doc, dict):
                self._reject(line, "not a JSON object", {"_raw": text[:MAX_RAW]})
                continue
            unknown = doc.keys() - self._names
            if unknown and len(self._ignored) < MAX_IGNORED:
                self._ignored.update(dict.fromkeys(sorted(unknown)))
            result = self.contract.validate(doc)
            if isinstance(result, str):
                self._reject(line, result, doc)
            elif not self._is_new(result):
                self._duplicate(line, doc)

    def _is_new(self, row: Row) -> bool:
        key = self._key
        if len(key) == 1:
            value = row[key[0]]
            raw = value.encode() if type(value) is str else repr(value).encode()
        else:
            raw = repr(tuple(row[i] for i in key)).encode()
        digest = int.from_bytes(hashlib.blake2b(raw, digest_size=16).digest(), "little")
        if digest in self._seen:
            return False
        self._seen.add(digest)
        self._rows.append(row)
        self.written += 1
        if len(self._rows) >= self._batch_rows:
            self._flush(row_group=False)
        return True

    def _duplicate(self, line: int, row: object) -> None:
        self.duplicates += 1
        names = ", ".join(self.contract.key)
        self._write_reject(line, f"duplicate {names}: an earlier row has this key", row)

    def _reject(self, line: int, reason: str, row: object) -> None:
        self.rejected += 1
        self._write_reject(line, reason, row)

    def _write_reject(self, line: int, reason: str, row: object) -> None:
        self._rejects.write(orjson.dumps({"line": line, "reason": reason, "row": row}) + b"\n")

    def _flush(self, *, row_group: bool) -> None:
        if self._rows:
            columns = list(zip(*self._rows, strict=True))
            arrays = [
                pa.array(values, type=f.type)
                for values, f in zip(columns, self._schema, strict=True)
            ]
            self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
            self._batched += len(self._rows)
            self._rows = []
        if self._batches and (row_group or self._batched >= self._row_group_rows):
            table = pa.Table.from_batches(self._batches, schema=self._schema)
            self._writer.write_table(table, row_group_size=self._batched)
            self._batches, self._batched = [], 0
