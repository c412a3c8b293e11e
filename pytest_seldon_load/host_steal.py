"""CPU steal time: the share of this VM's CPU time its host gave to someone else.

On a shared cloud VM the hypervisor may run other guests on "our" cores. The kernel counts
that time as *steal* in the first line of /proc/stat. While it is stolen the load generator's
event loop does not run, so sends leave late and answers are read late: lag that is neither
the generator's own work nor the server's. Two reads of /proc/stat (at the start and the end
of the sending period, a few microseconds each) give the share of the run's CPU time that
was stolen. Elsewhere than Linux there is no such counter and the figure is absent (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")

STEAL_EXPLAINS_LAG = 0.02
"""A run that lagged while the host took at least this share of the VM's CPU time names the
steal as a cause: with 2 cores and 2% steal, stalls of 10-30 ms are common."""

STEAL_WORTH_MENTIONING = 0.005
"""Below this share, steal is left out of messages (a run judged sound need not say it)."""

_STEAL_FIELD = 7
"""Position of steal in the ``cpu`` line: user nice system idle iowait irq softirq steal."""
_COUNTED_FIELDS = 8
"""Fields that add up to the CPU time that passed (guest time is inside user already)."""


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat: stolen and total time, in clock ticks."""

    steal: int
    total: int


def parse_cpu_line(text: str) -> CpuTimes | None:
    """The all-CPU counters of a /proc/stat text, or None if it has no readable ``cpu`` line
    (a kernel older than 2.6.11 has no steal field)."""
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] != "cpu":
            continue
        try:
            ticks = [int(value) for value in fields[1 : 1 + _COUNTED_FIELDS]]
        except ValueError:
            return None
        if len(ticks) < _COUNTED_FIELDS or any(t < 0 for t in ticks):
            return None
        return CpuTimes(steal=ticks[_STEAL_FIELD], total=sum(ticks))
    return None


def read_cpu_times(path: Path = PROC_STAT) -> CpuTimes | None:
    """The counters now; None where there is no /proc/stat (macOS, Windows) or it is unreadable."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_cpu_line(text)


def steal_between(start: CpuTimes | None, end: CpuTimes | None) -> float | None:
    """Share of the CPU time between two reads that the host took, 0..1; None if either read
    is missing or no tick passed (too short a period to say)."""
    if start is None or end is None:
        return None
    total = end.total - start.total
    stolen = end.steal - start.steal
    if total <= 0 or stolen < 0:
        return None
    return min(1.0, stolen / total)


class StealMeter:
    """Steal over one period: `start()` then `stop()`; `fraction` is None until both ran or
    where the counter does not exist."""

    def __init__(self, path: Path = PROC_STAT) -> None:
        self._path = path
        self._start: CpuTimes | None = None
        self.fraction: float | None = None

    def start(self) -> None:
        self._start = read_cpu_times(self._path)
        self.fraction = None

    def stop(self) -> float | None:
        if self._start is not None:
            self.fraction = steal_between(self._start, read_cpu_times(self._path))
            self._start = None
        return self.fraction


def describe_steal(fraction: float) -> str:
    """In words, for the summary and failure messages."""
    share = f"{fraction:.1%}" if fraction < 0.1 else f"{fraction:.0%}"
    return f"the host took {share} of this VM's CPU time (CPU steal)"
