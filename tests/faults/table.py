"""One row per scenario, and the markdown table ``make faults`` prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """What one scenario cost. ``duplicated`` counts writes and letters (see ``effects``)."""

    scenario: str
    objects: int
    results: int
    lost: int
    wrong: int
    duplicated: int
    writes: int
    recovered_s: float
    notes: str = ""
    problems: tuple[str, ...] = ()  # anything else that must fail the run (a hot loop…)

    @property
    def failed(self) -> bool:
        """Lost, wrong or duplicated anything, or broke a rule of its own."""
        return bool(self.lost or self.wrong or self.duplicated or self.problems)


HEADER = (
    "| scenario | objects | results | lost | wrong | duplicated side effects "
    "| writes | time to recover | notes |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def render(rows: list[Row]) -> str:
    """The markdown table, then each row's problems, if any."""
    lines = [HEADER]
    for r in rows:
        cells = (
            r.scenario,
            f"{r.objects:,}",
            f"{r.results:,}",
            r.lost,
            r.wrong,
            r.duplicated,
            f"{r.writes:,}",
            f"{r.recovered_s:.1f} s",
            r.notes,
        )
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    for r in rows:
        lines.extend(f"- {r.scenario}: {p}" for p in r.problems)
    return "\n".join(lines)
