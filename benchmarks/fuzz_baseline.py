"""Fuzz the baseline loader: seeded mutations of small valid baselines, read and used.

Each case damages a valid baseline (two runs of three one-second windows, so a case costs
about a millisecond, not the tens a full-size file would): truncated, characters or bytes
flipped, a field removed or replaced by a value of another type, a histogram's text damaged,
a 5000-digit number, nesting too deep, another file kind in its place. The text goes through
the loader (`parse_baseline_text`; byte-level damage through `read_baseline` and a real
file, as undecodable text can only come from disk), then every run it holds is parsed, and
each run the damage touched is compared with a reference run, as --load-baseline-compare
would. The loader may only raise its documented errors (BaselineError: BaselineMissing,
BaselineUnreadable); any other exception stops the run with the seed and case that found it.

    .venv/bin/python benchmarks/fuzz_baseline.py [--cases 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from regression_power import synthetic_run

from pytest_seldon_load.baseline import (
    BaselineError,
    build_baseline,
    parse_baseline_text,
    read_baseline,
)
from pytest_seldon_load.regression import judge_regression

REPLACEMENTS: tuple[Any, ...] = (
    None,
    0,
    -1,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "x",
    [],
    {},
    [1],
    {"a": 1},
    True,
    10**30,
    -(10**30),
    "HISTFAAAACx4nJNpmSzMwMDAxQABzFCaEUzOmPGhHsJgAgBMmgSO",
)
FOREIGN = (
    {"schema": "pytest-seldon-load/session/1", "runs": []},
    {"schema": "pytest-seldon-load/result/1"},
    {"name": "main", "tests": {}},
    [],
    "baseline",
    None,
)
SEED_PATH = Path("fuzz/main.json")
"""The name messages give the fuzzed text (only byte-level cases touch a real file)."""


def valid_document() -> dict[str, Any]:
    runs = []
    for index, key in enumerate(("t::a", "t::b")):
        result = synthetic_run(np.random.default_rng(index), 20, 3, scale=1.0 + index / 5)
        runs.append(result.to_dict() | {"nodeid": key, "key": key, "verdict": "pass"})
    document, _ = build_baseline("main", runs, {"node": "x"}, {"id": "abc"})
    return document


def _containers(node: Any, rng: random.Random) -> list[Any]:
    """A random walk down from `node`: the containers passed on the way."""
    walked = [node]
    for _ in range(rng.randrange(1, 7)):
        children = list(node.values()) if isinstance(node, dict) else list(node)
        children = [c for c in children if isinstance(c, (dict, list)) and c]
        if not children:
            break
        node = rng.choice(children)
        walked.append(node)
    return walked


def _strings(node: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) holding a histogram's text, anywhere in the document."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, str) and key in ("latency_hdr", "service_hdr") and value:
            found.append((node, key))
        elif isinstance(value, (dict, list)):
            _strings(value, found)
    return found


def _flip_chars(rng: random.Random, text: str, alphabet: str) -> str:
    chars = list(text)
    for _ in range(rng.randrange(1, 8)):
        chars[rng.randrange(len(chars))] = rng.choice(alphabet)
    return "".join(chars)


def mutate_structure(rng: random.Random, document: dict[str, Any], how: str) -> str:
    target = rng.choice(_containers(document, rng))
    if isinstance(target, dict):
        key = rng.choice(list(target))
        if how == "field removed":
            del target[key]
        else:
            target[key] = rng.choice(REPLACEMENTS)
    elif how == "field removed":
        del target[rng.randrange(len(target))]
    else:
        target[rng.randrange(len(target))] = rng.choice(REPLACEMENTS)
    return json.dumps(document)


def mutate(rng: random.Random, valid: str) -> tuple[str, str | bytes]:
    """(how, damaged text or bytes) for one case."""
    how = rng.choice(
        (
            "truncated",
            "characters flipped",
            "bytes flipped",
            "field removed",
            "field replaced",
            "field replaced",
            "histogram damaged",
            "huge number",
            "deep nesting",
            "another kind of file",
        )
    )
    if how == "truncated":
        return how, valid[: rng.randrange(len(valid))]
    if how == "characters flipped":
        return how, _flip_chars(rng, valid, '{}[]":,0123456789aZ+/=-e.\\ ')
    if how == "bytes flipped":
        data = bytearray(valid.encode())
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return how, bytes(data)
    if how == "deep nesting":
        depth = rng.choice((100, 1000, 50_000))
        inner = "[" * depth + "]" * depth
        return how, valid.replace('"tests": {', '"deep": ' + inner + ', "tests": {', 1)
    if how == "another kind of file":
        return how, json.dumps(rng.choice(FOREIGN))
    damaged = json.loads(valid)
    if how == "histogram damaged":
        holder, key = rng.choice(_strings(damaged, []))
        holder[key] = _flip_chars(rng, holder[key], "ABCxyz019+/=")
        return how, json.dumps(damaged)
    if how == "huge number":
        text = json.dumps(damaged)
        digits = "9" * 5000
        return how, text.replace('"ok": ', f'"ok": {digits}', 1)
    return how, mutate_structure(rng, damaged, how)


def fuzz(cases: int, seed: int, directory: Path) -> tuple[Counter, Counter]:
    """How each case ended (read and every run used, unreadable, a damaged run named) and by
    which error type, per kind of damage. Any other exception propagates."""
    rng = random.Random(seed)
    document = valid_document()
    valid = json.dumps(document)
    untouched = {key: json.dumps(entry["result"]) for key, entry in document["tests"].items()}
    reference = synthetic_run(np.random.default_rng(9), 20, 3)
    path = directory / "main.json"
    ends: Counter = Counter()
    errors: Counter = Counter()

    def load(damaged: str | bytes) -> Any:
        if isinstance(damaged, bytes):
            path.write_bytes(damaged)
            return read_baseline(path, "main")
        return parse_baseline_text(damaged, SEED_PATH, "main")

    for case in range(cases):
        how, damaged = mutate(rng, valid)
        try:
            try:
                saved = load(damaged)
            except BaselineError as exc:
                ends["unreadable"] += 1
                errors[type(exc).__name__] += 1
                continue
            ends["read"] += 1
            for key, entry in saved.tests.items():
                try:
                    result = saved.result(key)
                except BaselineError as exc:
                    ends["damaged run named"] += 1
                    errors[type(exc).__name__ + " (one run)"] += 1
                    continue
                ends["run used"] += 1
                changed = json.dumps(entry.get("result")) != untouched.get(key)
                if result is not None and changed:  # an untouched run was judged once
                    judge_regression(result, reference)
                    ends["damaged run judged"] += 1
        except Exception:
            print(f"case {case} (seed {seed}, {how}) raised:", file=sys.stderr)
            raise
    return ends, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    memory = Path("/dev/shm")  # byte-level cases write a file: in memory where there is one
    with tempfile.TemporaryDirectory(dir=memory if memory.is_dir() else None) as directory:
        ends, errors = fuzz(args.cases, args.seed, Path(directory))
    took = time.perf_counter() - started
    print(
        f"{args.cases} cases (seed {args.seed}) in {took:.0f}s "
        f"({took / args.cases * 1000:.2f} ms a case): no undocumented exception"
    )
    print("ends: " + ", ".join(f"{name} {count}" for name, count in ends.most_common()))
    print("errors: " + ", ".join(f"{name} {count}" for name, count in errors.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
