"""A full result through a log: how a load pod hands its measurement to the collector.

A pod's log is the one channel every cluster gives without extra permissions (no volume to
share, no API access from the pod). ``seldon-load run --result-to-stdout`` prints the result
(HDR histograms and per-second windows included, so parts merge exactly) as one JSON line
between two marker lines; the collector reads the pod's log and takes what is between the
markers, ignoring everything else the run printed.
"""

from __future__ import annotations

import sys

from .result import LoadResult

BEGIN = "----- seldon-load result begin -----"
END = "----- seldon-load result end -----"


def print_result(result: LoadResult) -> None:
    """Print the result between the markers on stdout (flushed: the pod may end next)."""
    sys.stdout.write(f"{BEGIN}\n{result.to_json()}\n{END}\n")
    sys.stdout.flush()


def result_from_log(log: str, where: str) -> LoadResult:
    """The result printed in `log`; ValueError naming `where` when it holds none or a damaged
    one (a pod killed before it finished, say)."""
    begin = log.rfind(BEGIN)
    if begin < 0:
        raise ValueError(f"{where}: its log holds no result (it did not finish its run)")
    end = log.find(END, begin)
    if end < 0:
        raise ValueError(f"{where}: its log holds a cut-off result")
    try:
        return LoadResult.from_json(log[begin + len(BEGIN) : end].strip())
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
