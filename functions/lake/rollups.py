"""Curated aggregates that stay correct whatever order staging files arrive in.

A :class:`Rollup` sums a measure and counts rows per group. It is computed in
two steps so that each staging file's contribution can be replaced on its own:
``partial`` aggregates one staging file; ``combine`` adds partials up. Adding
is associative and commutative, so the total of a set of partials does not
depend on the order they were made in, and a file processed twice replaces its
partial rather than adding to the total a second time.

Outputs are sorted by the group columns, so equal inputs give byte-equal
Parquet files (and equal ETags).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, Literal

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]  # no types without pyarrow-stubs
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

__all__ = ["ROLLUPS", "Rollup"]

_BATCH_ROWS = 64 * 1024  # rows read from a staging file at a time
_REGROUP_ROWS = 1_000_000  # partial groups held before they are added up again


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollup:
    """``sum(measure)`` and ``count(*)`` per ``group_by``, without rows whose ``exclude_column``
    is one of ``exclude_values``. Written as ``curated/<dataset>/<name>.parquet``."""

    dataset: str
    name: str
    group_by: tuple[str, ...]
    measure: str
    count_as: str
    exclude_column: str
    exclude_values: frozenset[str]

    @property
    def columns(self) -> tuple[str, ...]:
        """The output's columns: the groups, the sum, the count."""
        return (*self.group_by, self.measure, self.count_as)

    def partial(self, parquet: IO[bytes]) -> pa.Table:
        """One staging file's contribution, read a batch at a time."""
        source = pq.ParquetFile(parquet)
        needed = [*self.group_by, self.measure, self.exclude_column]
        parts: list[pa.Table] = []
        held = 0
        for batch in source.iter_batches(batch_size=_BATCH_ROWS, columns=needed):
            table = pa.Table.from_batches([batch])
            # skip_nulls: a null status is not an excluded one (false, never null, so kept).
            excluded = pc.is_in(
                table[self.exclude_column],
                value_set=pa.array(self.exclude_values),
                skip_nulls=True,
            )
            table = table.filter(pc.invert(excluded))
            grouped = table.group_by(list(self.group_by), use_threads=False).aggregate(
                [(self.measure, "sum"), (self.measure, "count", pc.CountOptions(mode="all"))]
            )
            parts.append(self._named(grouped, "count"))
            held += grouped.num_rows
            if held >= _REGROUP_ROWS:
                parts, held = [self._add(parts)], 0
        if not parts:
            return self._empty(source.schema_arrow)
        return self._sorted(self._add(parts))

    def combine(self, partials: Iterable[pa.Table]) -> pa.Table:
        """The total of ``partials`` (tables shaped like ``partial``'s output)."""
        parts: list[pa.Table] = []
        held = 0
        first: pa.Table | None = None
        for table in partials:
            first = table if first is None else first
            parts.append(table.select(list(self.columns)))
            held += table.num_rows
            if held >= _REGROUP_ROWS:
                parts, held = [self._add(parts)], 0
        if first is None:
            raise ValueError("combine needs at least one partial")
        return self._sorted(self._add(parts))

    def _add(self, parts: list[pa.Table]) -> pa.Table:
        table = pa.concat_tables(parts, promote_options="permissive")
        grouped = table.group_by(list(self.group_by), use_threads=False).aggregate(
            [(self.measure, "sum"), (self.count_as, "sum")]
        )
        return self._named(grouped, "sum")

    def _named(self, grouped: pa.Table, counted: str) -> pa.Table:
        # Aggregates are named "<column>_<function>"; where pyarrow puts them varies by version.
        source = self.measure if counted == "count" else self.count_as
        names = [*self.group_by, f"{self.measure}_sum", f"{source}_{counted}"]
        return grouped.select(names).rename_columns(list(self.columns))

    def _sorted(self, table: pa.Table) -> pa.Table:
        order: list[tuple[str, Literal["ascending", "descending"]]]
        order = [(c, "ascending") for c in self.group_by]
        return table.sort_by(order).select(list(self.columns)).combine_chunks()

    def _empty(self, schema: pa.Schema) -> pa.Table:
        fields = [schema.field(c) for c in self.group_by]
        measure = schema.field(self.measure).type
        # The type a sum of this measure has (decimal128(18, 2) sums as decimal128(38, 2)).
        summed = pa.table({"m": pa.array([], measure)}).group_by([]).aggregate([("m", "sum")])
        fields += [
            pa.field(self.measure, summed.schema.field(0).type),
            pa.field(self.count_as, pa.int64()),
        ]
        return pa.schema(fields).empty_table()


ORDERS_DAILY = Rollup(
    dataset="orders",
    name="daily_totals",
    group_by=("order_date", "customer_id", "currency"),
    measure="amount",
    count_as="orders",
    exclude_column="status",
    exclude_values=frozenset({"cancelled"}),
)
"""Per day, customer and currency: the amount ordered and the number of orders, cancelled
orders left out (returned ones stay: they were sold, and returns are a separate question)."""

ROLLUPS: Mapping[str, Rollup] = MappingProxyType({r.dataset: r for r in (ORDERS_DAILY,)})
"""The rollup of each curated dataset, by dataset name."""
