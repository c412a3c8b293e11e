"""The end-of-session table of every load run: one line per run, the verdict last."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..durations import format_ms
from ..host_steal import STEAL_EXPLAINS_LAG, STEAL_WORTH_MENTIONING, describe_steal
from ..redact import redact_text

COLUMNS = ("test", "rate target/achieved", "requests", "p50", "p99", "errors", "verdict")


def _ms(value: Any) -> str:
    return format_ms(float("nan") if value is None else float(value))


def _short_name(nodeid: str) -> str:
    """The test's name without its file path: the table is read beside the test list."""
    return nodeid.split("::", 1)[-1]


def summary_rows(runs: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for run in runs:
        rows.append(
            (
                redact_text(_short_name(str(run.get("label") or run.get("nodeid", "?")))),
                f"{run['target_rate']:g}/{run['achieved_rate']:.1f}",
                str(run["requests"]),
                _ms(run.get("p50")),
                _ms(run.get("p99")),
                f"{run['error_rate']:.2%}",
                str(run.get("verdict", "")),
            )
        )
    return rows


def format_table(runs: Sequence[dict[str, Any]], width: int = 120) -> list[str]:
    rows = summary_rows(runs)
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS))]
    fixed = sum(widths[1:]) + 2 * (len(COLUMNS) - 1)
    widths[0] = max(min(widths[0], 60), min(widths[0], width - fixed))

    def line(cells: Sequence[str]) -> str:
        first = cells[0] if len(cells[0]) <= widths[0] else "…" + cells[0][-(widths[0] - 1) :]
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(widths[i]) for i, cell in enumerate(cells) if i > 0]
        return "  ".join(parts).rstrip()

    return [line(COLUMNS), *(line(r) for r in rows)]


def write_summary(terminalreporter, runs: Sequence[dict[str, Any]]) -> None:
    terminalreporter.write_sep("=", "seldon-load summary")
    width = getattr(terminalreporter, "_tw", None)
    columns = width.fullwidth if width is not None else 120
    for text in format_table(runs, columns):
        bad = text.endswith(("FAIL", "invalid", "test failed", "interrupted"))
        terminalreporter.write_line(text, red=bad, bold=bad)
    if any(not run.get("kept_up", True) for run in runs):
        terminalreporter.write_line(
            "lagged: the load generator fell behind its schedule, so those latencies include "
            "its own delay (they are upper bounds): budgets met are met, budgets missed within "
            "what the lag could add are invalid; lower the rate or see BENCHMARKS.md for what "
            "one process holds",
            yellow=True,
        )
    stolen = steal_line(runs)
    if stolen:
        terminalreporter.write_line(stolen, yellow=True)


def steal_line(runs: Sequence[dict[str, Any]]) -> str:
    """The run whose host took most CPU time (Linux steal) in words, if any took enough to
    matter; lag in such a run is at least partly the host's."""
    stolen = [
        (float(run["steal_fraction"]), run)
        for run in runs
        if isinstance(run.get("steal_fraction"), (int, float))
        and run["steal_fraction"] >= STEAL_WORTH_MENTIONING
    ]
    if not stolen:
        return ""
    fraction, worst = max(stolen, key=lambda pair: pair[0])
    name = redact_text(_short_name(str(worst.get("label") or worst.get("nodeid", "?"))))
    text = f"host CPU steal: during {name}, {describe_steal(fraction)}"
    if len(stolen) > 1:
        text += f" (and steal in {len(stolen) - 1} other runs)"
    if not worst.get("kept_up", True) and fraction >= STEAL_EXPLAINS_LAG:
        text += "; its lag is at least partly the host's, not the generator's"
    return text
