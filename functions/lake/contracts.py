"""Dataset contracts as code: columns, types, required and allowed values, the unique key.

A :class:`Contract` says what a valid row of a dataset is. ``validate`` turns
one row (a mapping of column → cell) into a typed :data:`Row` — a tuple in the
contract's column order — or returns the reason it is invalid, naming every bad
column. ``bind`` resolves a CSV header against the contract once, so each
record is validated by position. ``schema`` is the Arrow schema of the typed
rows, which is what lands in the staging layer as Parquet.

``CONTRACTS`` is the registry, keyed by dataset name; the first segment of a
raw object's key names the dataset.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import call
from types import MappingProxyType

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]  # no types without pyarrow-stubs

from functions.lake.values import KINDS, Invalid, Kind, Parser, parser
from runtime import ConfigError, InputError

__all__ = ["CONTRACTS", "ORDERS", "Binding", "Column", "Contract", "Row"]

Row = tuple[object, ...]
"""A valid row: typed values in the contract's column order."""

_DATASET = re.compile(r"[a-z][a-z0-9_]{0,62}")
_NUMERIC: frozenset[Kind] = frozenset({"int", "decimal", "float"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column: its type, whether a value is required, and constraints on values.

    ``allowed`` restricts a string column to a set of values; ``minimum`` bounds
    a numeric column from below (inclusive). ``precision``/``scale`` size a
    decimal column (Parquet ``decimal128(precision, scale)``).
    """

    name: str
    kind: Kind
    required: bool = False
    allowed: frozenset[str] = frozenset()
    minimum: Decimal | None = None
    precision: int = 18
    scale: int = 2

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ConfigError(f"column name {self.name!r} is empty or padded")
        if self.kind not in KINDS:
            raise ConfigError(f"column {self.name!r}: kind must be one of {KINDS}")
        if self.allowed and self.kind != "string":
            raise ConfigError(f"column {self.name!r}: allowed values need a string column")
        if self.minimum is not None and self.kind not in _NUMERIC:
            raise ConfigError(f"column {self.name!r}: a minimum needs a numeric column")
        if not 0 <= self.scale <= self.precision <= 38:
            raise ConfigError(f"column {self.name!r}: need 0 <= scale <= precision <= 38")

    @property
    def arrow_type(self) -> pa.DataType:
        """The column's Arrow (and so Parquet) type."""
        types: dict[Kind, pa.DataType] = {
            "string": pa.string(),
            "int": pa.int64(),
            "decimal": pa.decimal128(self.precision, self.scale),
            "float": pa.float64(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("us", tz="UTC"),
            "bool": pa.bool_(),
        }
        return types[self.kind]


def _parser(column: Column) -> Parser:
    # values knows cell types, not contracts: it gets the column's fields, not the column.
    return parser(
        column.kind,
        name=column.name,
        required=column.required,
        allowed=column.allowed,
        minimum=column.minimum,
        precision=column.precision,
        scale=column.scale,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Contract:
    """What a valid row of one dataset is, and which columns identify a row."""

    dataset: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    _parsers: tuple[Parser, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _DATASET.fullmatch(self.dataset):
            raise ConfigError(f"dataset name {self.dataset!r} must match [a-z][a-z0-9_]*")
        names = [c.name for c in self.columns]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"dataset {self.dataset!r}: column names must be unique, non-empty")
        by_name = {c.name: c for c in self.columns}
        for name in self.key or ("",):
            if name not in by_name or not by_name[name].required:
                raise ConfigError(
                    f"dataset {self.dataset!r}: key column {name!r} must be a required column"
                )
        object.__setattr__(self, "_parsers", tuple(map(_parser, self.columns)))

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(c.name for c in self.columns)

    @property
    def key_positions(self) -> tuple[int, ...]:
        """Where the key columns sit in a :data:`Row`."""
        return tuple(self.names.index(k) for k in self.key)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the contract does; stamped on what it validated (lineage)."""
        text = repr((self.dataset, self.columns, self.key))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def schema(self) -> pa.Schema:
        """The Arrow schema of valid rows; required columns are non-nullable."""
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=not c.required) for c in self.columns]
        )

    def validate(self, row: Mapping[str, object]) -> Row | str:
        """``row`` typed, or why it is invalid (every bad column, ``; ``-separated).

        Keys the contract does not name are ignored; a missing key is an empty cell.
        """
        return self.typed([row.get(name) for name in self.names])

    def typed(self, cells: Sequence[object]) -> Row | str:
        """Cells already in column order (``None`` where absent) typed, or why not."""
        try:
            return tuple(map(call, self._parsers, cells))  # the loop runs in C
        except Invalid:
            pass
        # Only for invalid rows: every column again, to name all that are wrong.
        reasons = []
        for parse, cell in zip(self._parsers, cells, strict=True):
            try:
                parse(cell)
            except Invalid as exc:
                reasons.append(exc.reason)
        return "; ".join(reasons)

    def bind(self, header: Sequence[str]) -> Binding:
        """Resolve a CSV header once; raises InputError if required columns are missing."""
        names = [h.strip() for h in header]
        wanted = set(self.names)
        repeated = sorted({n for n in names if n in wanted and names.count(n) > 1})
        if repeated:
            raise InputError(f"header repeats columns {repeated}", where="line 1")
        missing = [c.name for c in self.columns if c.required and c.name not in names]
        if missing:
            raise InputError(
                f"header lacks required columns {missing} of dataset {self.dataset!r}",
                where="line 1",
            )
        return Binding(
            contract=self,
            header=tuple(names),
            positions=tuple(names.index(n) if n in names else None for n in self.names),
            ignored=tuple(n for n in names if n not in wanted),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """A contract bound to one file's header: each column's position is known."""

    contract: Contract
    header: tuple[str, ...]
    positions: tuple[int | None, ...]
    ignored: tuple[str, ...]
    _in_order: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The contract's columns in its order, and nothing else: records need no reordering.
        in_order = self.positions == tuple(range(len(self.header)))
        object.__setattr__(self, "_in_order", in_order)

    def validate(self, values: Sequence[str]) -> Row | str:
        """One CSV record (its fields, in header order) typed, or why it is invalid."""
        if len(values) != len(self.header):
            return f"expected {len(self.header)} fields, got {len(values)}"
        if self._in_order:
            return self.contract.typed(values)  # the usual file: no reordering needed
        return self.contract.typed([None if p is None else values[p] for p in self.positions])

    def as_mapping(self, values: Sequence[str]) -> dict[str, object]:
        """A record as header name → field, for a rejects file (extra fields under ``_extra``)."""
        row: dict[str, object] = dict(zip(self.header, values, strict=False))
        if len(values) > len(self.header):
            row["_extra"] = list(values[len(self.header) :])
        return row


ORDERS = Contract(
    dataset="orders",
    columns=(
        Column(name="order_id", kind="string", required=True),
        Column(name="customer_id", kind="string", required=True),
        Column(name="order_date", kind="date", required=True),
        # Money is decimal128(18, 2), never float64: sums of binary floats drift
        # (0.1 + 0.2 != 0.3), and curated totals must add up to the cent.
        # Negative amounts are refused: a refund is a 'returned' status, not a sign.
        Column(name="amount", kind="decimal", minimum=Decimal(0)),
        Column(name="currency", kind="string", allowed=frozenset({"EUR", "USD", "GBP"})),
        Column(
            name="status",
            kind="string",
            allowed=frozenset({"placed", "shipped", "cancelled", "returned"}),
        ),
    ),
    key=("order_id",),
)
"""The demo dataset: one row per order."""

CONTRACTS: Mapping[str, Contract] = MappingProxyType({c.dataset: c for c in (ORDERS,)})
"""Every dataset the lake accepts, by name (the first segment of a raw key)."""
