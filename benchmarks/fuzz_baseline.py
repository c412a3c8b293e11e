"""Fuzz the baseline loader: seeded mutations of a valid baseline file, read and used.

Each case writes a mutated baseline (truncated, characters flipped, a field removed or
replaced by a value of another type, nesting too deep), then reads it, parses every run and
compares it with a reference run, as --load-baseline-compare would. The loader may only
raise its documented errors (BaselineError: BaselineMissing, BaselineUnreadable); any other
exception stops the run with the seed and case that found it.

    .venv/bin/python benchmarks/fuzz_baseline.py [--cases 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from regression_power import synthetic_run

from pytest_seldon_load.baseline import BaselineError, build_baseline, read_baseline
from pytest_seldon_load.regression import judge_regression

REPLACEMENTS = (None, 0, -1, 1e308, float("nan"), "", "x", [], {}, [1], {"a": 1}, True, 10**30)


def valid_document() -> dict:
    runs = []
    for index, key in enumerate(("t::a", "t::b")):
        result = synthetic_run(np.random.default_rng(index), 20, 5, scale=1.0 + index / 5)
        runs.append(result.to_dict() | {"nodeid": key, "key": key, "verdict": "pass"})
    document, _ = build_baseline("main", runs, {"node": "x"}, {"id": "abc"})
    return document


def mutate(rng: random.Random, text: str) -> str:
    choice = rng.randrange(6)
    if choice == 0:  # truncated
        return text[: rng.randrange(len(text))]
    if choice == 1:  # characters flipped
        chars = list(text)
        for _ in range(rng.randrange(1, 8)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0123456789aZ+/=-e.')
        return "".join(chars)
    if choice == 5:
        return "[" * 50_000 + "]" * 50_000  # nested too deeply
    document = json.loads(text)
    node: object = document
    containers = [document]
    for _ in range(rng.randrange(1, 6)):  # walk down to a random container
        children = list(node.values()) if isinstance(node, dict) else list(node)  # type: ignore[union-attr]
        children = [c for c in children if isinstance(c, (dict, list)) and c]
        if not children:
            break
        node = rng.choice(children)
        containers.append(node)
    target = rng.choice(containers)
    value = rng.choice(REPLACEMENTS)
    if isinstance(target, dict):
        key = rng.choice(list(target))
        if choice == 2:
            del target[key]
        else:
            target[key] = value
    else:
        target[rng.randrange(len(target))] = value
    return json.dumps(document)


def fuzz(cases: int, seed: int, directory: Path) -> dict[str, int]:
    """How each case ended: read (and each run parsed and compared), unreadable, or a
    damaged run named. Any other exception propagates."""
    rng = random.Random(seed)
    valid = json.dumps(valid_document())
    reference = synthetic_run(np.random.default_rng(9), 20, 5)
    path = directory / "fuzz.json"
    ends = {"read": 0, "unreadable": 0, "damaged run": 0}
    for case in range(cases):
        path.write_text(mutate(rng, valid), encoding="utf-8")
        try:
            saved = read_baseline(path)
        except BaselineError:
            ends["unreadable"] += 1
            continue
        except Exception:
            print(f"case {case} (seed {seed}) raised:", file=sys.stderr)
            raise
        ends["read"] += 1
        for key in saved.tests:
            try:
                result = saved.result(key)
            except BaselineError:
                ends["damaged run"] += 1
                continue
            if result is not None:
                judge_regression(result, reference)
    return ends


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        ends = fuzz(args.cases, args.seed, Path(directory))
    took = time.perf_counter() - started
    print(
        f"{args.cases} cases (seed {args.seed}) in {took:.0f}s: no undocumented exception; "
        + ", ".join(f"{name} {count}" for name, count in ends.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
