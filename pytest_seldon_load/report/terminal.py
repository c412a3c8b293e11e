"""The end-of-session table of every load run: one line per run, the verdict last."""

from __future__ import annotations

import textwrap
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


LAGGED_NOTE = (
    "lagged: the load generator fell behind its schedule, so those latencies include its own "
    "delay (they are upper bounds): budgets met are met, budgets missed within what the lag "
    "could add are invalid; lower the rate or see BENCHMARKS.md for what one process holds"
)
BAD_VERDICTS = ("FAIL", "invalid", "test failed", "interrupted")


def _is_bad(text: str) -> bool:
    return text.endswith(BAD_VERDICTS)


def verdict_counts(runs: Sequence[dict[str, Any]]) -> str:
    """ "3 load runs: 2 pass, 1 FAIL": the whole session in one line."""
    counts: dict[str, int] = {}
    for run in runs:
        word = str(run.get("verdict", "")) or "unjudged"
        counts[word] = counts.get(word, 0) + 1
    noun = "load run" if len(runs) == 1 else "load runs"
    return f"{len(runs)} {noun}: " + ", ".join(f"{n} {word}" for word, n in counts.items())


def write_summary(terminalreporter, runs: Sequence[dict[str, Any]], verbosity: int = 0) -> None:
    """The table of every run; under -q one line and the runs that did not pass; under -qq
    nothing (the failures say the rest)."""
    if verbosity <= -2 or not runs:
        return
    width = getattr(terminalreporter, "_tw", None)
    columns = width.fullwidth if width is not None else 120
    table = format_table(runs, columns)
    if verbosity < 0:
        bad = [text for text in table[1:] if _is_bad(text)]
        terminalreporter.write_line(f"seldon-load: {verdict_counts(runs)}", red=bool(bad))
        for text in bad:
            terminalreporter.write_line(text, red=True, bold=True)
        return
    terminalreporter.write_sep("=", "seldon-load summary")
    for text in table:
        red = _is_bad(text)
        terminalreporter.write_line(text, red=red, bold=red)
    if any(not run.get("kept_up", True) for run in runs):
        for line in textwrap.wrap(LAGGED_NOTE, width=max(40, columns - 1)):
            terminalreporter.write_line(line, yellow=True)
    stolen = steal_line(runs)
    if stolen:
        for line in textwrap.wrap(stolen, width=max(40, columns - 1)):
            terminalreporter.write_line(line, yellow=True)


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
