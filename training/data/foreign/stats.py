"""What a conversion read, wrote and left out, as the CLI prints it and as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.contract import InvalidEvent, format_ts

MAX_EXAMPLES = 3
#: ``ConvertStats.churn_table`` when churn is inactivity rather than a table.
INACTIVITY = "inactivity"


@dataclass
class ConvertStats:
    """What a conversion read, wrote and left out, and what looked suspicious."""

    usage_path: Path
    #: None when churn is inactivity (``ForeignMapping.inactive_days``).
    churn_path: Path | None
    out_path: Path
    churn_table: str = ""
    usage_rows: int = 0
    churn_rows: int = 0
    interactions: int = 0
    accounts: int = 0
    profiles: int = 0
    churned: int = 0
    renewed: int = 0
    usage_invalid: Counter = field(default_factory=Counter)
    churn_invalid: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    types: Counter = field(default_factory=Counter)
    unmapped_types: Counter = field(default_factory=Counter)
    #: Usage types as the log spells them, before the type map (what a map entry can refer to).
    source_types: Counter = field(default_factory=Counter)
    #: Accounts whose latest outcome is a churn, and how many of them still show usage a day after it.
    churned_accounts: int = 0
    usage_after_churn: int = 0
    time_formats: dict[str, str] = field(default_factory=dict)
    first_ms: int | None = None
    last_ms: int | None = None
    as_of_ms: int | None = None
    #: Inactivity churn: N, and where the written log ends (as-of - N days; later rows only decide churns).
    inactive_days: int | None = None
    labelled_until_ms: int | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The log was written to a temporary file (by :func:`training.runs.from_foreign.train_foreign`) and is
    #: gone after training.
    temporary: bool = False

    def note(self, table: str, where: str, exc: InvalidEvent) -> None:
        (self.usage_invalid if table == "usage" else self.churn_invalid)[exc.reason] += 1
        examples = self.examples.setdefault(f"{table}:{exc.reason}", [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {exc.detail}")

    def drop_cell(self, reason: str, where: str, detail: str) -> None:
        """A bad optional cell: counted with the rows left out (and an example kept), so a column full of
        junk shows in the summary, while the row itself is still written."""
        self.dropped[reason] += 1
        examples = self.examples.setdefault(f"usage:{reason}", [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {detail}")

    def to_json(self) -> dict[str, Any]:
        return {
            "usage": str(self.usage_path), "churn": str(self.churn_path) if self.churn_path else None,
            "out": str(self.out_path),
            "churn_table": self.churn_table, "usage_rows": self.usage_rows, "churn_rows": self.churn_rows,
            "interactions": self.interactions, "accounts": self.accounts, "profiles": self.profiles,
            "churned": self.churned, "renewed": self.renewed,
            "usage_invalid": dict(sorted(self.usage_invalid.items())),
            "churn_invalid": dict(sorted(self.churn_invalid.items())),
            "examples": self.examples, "dropped": dict(sorted(self.dropped.items())),
            "types": dict(self.types.most_common()), "unmapped_types": dict(self.unmapped_types.most_common(20)),
            "churned_accounts": self.churned_accounts, "usage_after_churn": self.usage_after_churn,
            "time_formats": self.time_formats,
            "first": format_ts(self.first_ms) if self.first_ms is not None else None,
            "last": format_ts(self.last_ms) if self.last_ms is not None else None,
            "as_of": format_ts(self.as_of_ms) if self.as_of_ms is not None else None,
            "inactive_days": self.inactive_days,
            "labelled_until": format_ts(self.labelled_until_ms) if self.labelled_until_ms is not None else None,
            "warnings": self.warnings, "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """A few lines for the CLI: what was made, what was left out, what to check."""
        kind = "churn-date" if self.churn_table == "churn_dates" else "subscription"
        source = (f", churn = {self.inactive_days} days without usage," if self.churn_table == INACTIVITY
                  else f" and {self.churn_rows:,} {kind} rows")
        lines = [f"converted {self.usage_rows:,} usage rows ({self.accounts:,} accounts){source} "
                 f"into {'a temporary event log' if self.temporary else self.out_path}: "
                 f"{self.interactions:,} interactions, "
                 f"{self.profiles:,} profiles, {self.churned:,} churned, {self.renewed:,} renewed"]
        if self.first_ms is not None and self.last_ms is not None:
            lines[0] += f"; usage {format_ts(self.first_ms)[:10]} .. {format_ts(self.last_ms)[:10]}"
        if self.labelled_until_ms is not None:
            lines[0] += (f"; log written up to {format_ts(self.labelled_until_ms)[:10]} (the last "
                         f"{self.inactive_days} days only decide who churned)")
        bad = [f"{t} {k}={v}" for t, c in (("usage", self.usage_invalid), ("churn", self.churn_invalid))
               for k, v in sorted(c.items())] + [f"{k}={v}" for k, v in sorted(self.dropped.items())]
        if bad:
            lines.append("left out: " + ", ".join(bad))
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

