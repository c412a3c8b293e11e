"""How fast replay files are generated: lines per second for each protocol.

    python benchmarks/generate_speed.py            # 1,000,000 lines, the iris features
    python benchmarks/generate_speed.py --num 200000 --batch 8

Each run writes the file to a temporary directory (atomically, fsync included) and deletes it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pytest_seldon_load.generate import write_prediction_replay, write_recommendation_replay

IRIS = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]


def measure(label: str, write, path: Path, lines: int, rows: int) -> None:
    start = time.perf_counter()
    write(path)
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    path.unlink()
    print(
        f"{label:<38} {lines:>9,} lines {seconds:6.2f} s {lines / seconds:>10,.0f} lines/s"
        f" {rows / seconds:>10,.0f} rows/s {size / 1e6:7.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1_000_000, help="lines per file")
    parser.add_argument("--batch", type=int, default=1, help="rows per v1/v2 request")
    args = parser.parse_args()
    num, batch = args.num, args.batch
    print(f"{os.cpu_count()} CPUs; 4 numeric features; batch {batch} for v1/v2")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "replay"
        cases = [
            ("legacy", {"consumer_key": "benchmarkkey"}),
            ("v1", {"batch": batch}),
            ("v1 tensor", {"batch": batch, "tensor": True}),
            ("v2", {"batch": batch}),
            (
                "v2 + outputs + Seldon-Model",
                {"batch": batch, "outputs": ["predict_proba"], "seldon_model_header": "iris"},
            ),
        ]
        for label, options in cases:
            protocol = label.split()[0]

            def write(p: Path, protocol: str = protocol, options: dict = options) -> None:
                write_prediction_replay(p, protocol=protocol, features=IRIS, num=num, **options)

            rows = num if protocol == "legacy" else num * batch
            measure(f"prediction {label}", write, path, num, rows)
        mixed = [*IRIS, {"name": "colour", "type": "categorical", "values": ["red", "blue"]}]
        measure(
            "prediction v2 mixed (per-feature)",
            lambda p: write_prediction_replay(
                p, protocol="v2", features=mixed, num=num, batch=batch
            ),
            path,
            num,
            num * batch,
        )
        items = [str(i) for i in range(10_000)]
        measure(
            "recommendation (pairs)",
            lambda p: write_recommendation_replay(
                p, items=items, num_actions=num // 2, consumer_key="benchmarkkey"
            ),
            path,
            num,
            num // 2,
        )


if __name__ == "__main__":
    main()
