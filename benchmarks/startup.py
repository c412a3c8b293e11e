"""What the plugin costs a pytest session that runs no load test, and what a CLI import loads.

A project that installs pytest-seldon-load runs its unit tests with the plugin loaded too: a
session without load tests should pay close to nothing for it. This times, hyperfine-like,
``pytest`` on a one-test file with the plugin and with its three entry points disabled
(``-p no:seldon_load -p no:seldon_load_cluster -p no:seldon_load_reports``), runs interleaved
so that a busy machine slows both alike, and prints the medians and their difference. Then it
lists the heavy modules that importing the command line and the plugin pull in.

    .venv/bin/python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_common import print_machine

WITHOUT_PLUGIN = ("-p", "no:seldon_load", "-p", "no:seldon_load_cluster")
WITHOUT_PLUGIN += ("-p", "no:seldon_load_reports")
HEAVY = ("scipy", "kubernetes", "aiohttp.web", "numpy", "requests", "yaml", "grpc")
"""Modules a session without load tests, or a plain load run, should not need."""
TARGET_EXTRA_S = 0.4

TEST_FILE = "def test_arithmetic():\n    assert 1 + 1 == 2\n"


def time_session(directory: Path, extra: Sequence[str]) -> float:
    """Seconds for one ``pytest`` session over the one-test file, start to exit."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    started = time.perf_counter()
    subprocess.run(
        [*command, str(directory / "test_plain.py")],
        cwd=directory,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return time.perf_counter() - started


def loaded_by(code: str) -> list[str]:
    """The HEAVY modules loaded after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.split()


def import_seconds(module: str, runs: int) -> float:
    """Median wall time of ``python -c 'import MODULE'`` (interpreter start included)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=120)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="sessions of each kind")
    args = parser.parse_args(argv)
    print_machine("pytest start-up with and without the plugin (no load tests)")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "test_plain.py").write_text(TEST_FILE)
        time_session(directory, ())  # warm the file cache and bytecode of both variants
        time_session(directory, WITHOUT_PLUGIN)
        with_plugin, without = [], []
        for _ in range(args.runs):
            with_plugin.append(time_session(directory, ()))
            without.append(time_session(directory, WITHOUT_PLUGIN))
    plugin_s, bare_s = statistics.median(with_plugin), statistics.median(without)
    extra = plugin_s - bare_s
    print(f"pytest, plugin loaded:   median {plugin_s:.3f} s of {args.runs}")
    print(f"pytest, plugin disabled: median {bare_s:.3f} s of {args.runs}")
    verdict = "within" if extra <= TARGET_EXTRA_S else "OVER"
    print(f"the plugin's cost: {extra:+.3f} s ({verdict} the {TARGET_EXTRA_S} s target)")
    print()
    for module in ("pytest_seldon_load.cli", "pytest_seldon_load.pytest_plugin.plugin"):
        heavy = loaded_by(f"import {module}")
        took = import_seconds(module, max(3, args.runs // 2))
        print(f"import {module}: {took:.3f} s; heavy modules: {' '.join(heavy) or 'none'}")
    python_s = import_seconds("sys", max(3, args.runs // 2))
    print(f"(python -c 'import sys' alone: {python_s:.3f} s)")
    return 0 if extra <= TARGET_EXTRA_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
