"""Seeded fuzz of `LoadResult.from_json`: every input is read or refused with a ValueError.

Starts from real results (a recorded run with a timeline, an empty one, an Iago summary-only
one) and damages them: a field removed, replaced by a value of another type, a huge or
non-finite number, a 5000-digit number, very deep nesting, a histogram with bytes flipped or
cut short, an empty or foreign timeline. Any exception other than ValueError is a finding.

    python benchmarks/fuzz_result_json.py --cases 100000 --seed 1
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from collections.abc import Iterator
from typing import Any

from pytest_seldon_load.iago.stats import SummaryLoadResult
from pytest_seldon_load.result import LoadResult, Recorder

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    -1,
    0,
    2**63,
    -(2**70),
    1e308,
    "",
    "x",
    "HISTFAAAAx",
    [],
    {},
    [1, 2],
    {"a": 1},
    3.5,
    "12",
    "-5",
    "\u0000",
    "9" * 50,
]


def seeds() -> list[dict[str, Any]]:
    """Real results in their JSON form."""
    recorder = Recorder(warmup=0.0)
    for i in range(300):
        t = i / 100
        recorder.sent(t, t, 0.0)
        recorder.completed(
            t, t, t + 0.004 + (i % 7) / 1000, 200 if i % 9 else 503, None if i % 9 else "http_503"
        )
    recorded = recorder.result(target_rate=100, duration=3, scheduled=300, seed=4)
    summary = SummaryLoadResult(
        target_rate=10,
        duration=2,
        requests=20,
        ok=20,
        engine="iago",
        latency_summary={"count": 20, "p50": 3.0, "p99": 9.0, "maximum": 9.5},
        notes=["summary-only"],
        polls=[{"second": 1, "sent": 10}],
    )
    return [recorded.to_dict(), LoadResult(target_rate=1, duration=1).to_dict(), summary.to_dict()]


def _paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _damage_text(rng: random.Random, text: str) -> str:
    if not text:
        return rng.choice(["A", "====", "HISTFAAAA"])
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        chars[rng.randrange(len(chars))] = rng.choice("AZaz09+/=!")
    return "".join(chars)[: rng.randint(0, len(chars))] if rng.random() < 0.3 else "".join(chars)


def mutate(rng: random.Random, document: dict[str, Any]) -> str:
    """One damaged JSON text from a real result."""
    choice = rng.random()
    if choice < 0.03:
        return "[" * rng.randint(1000, 200_000) + "]" * rng.randint(0, 5)
    if choice < 0.06:
        return json.dumps(document)[: rng.randint(0, 400)]
    data = copy.deepcopy(document)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(data) if p]
        path = rng.choice(paths)
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key, value = path[-1], parent[path[-1]]
        roll = rng.random()
        if roll < 0.2 and isinstance(parent, dict):
            del parent[key]
        elif roll < 0.45 and isinstance(value, str) and value:
            parent[key] = _damage_text(rng, value)
        elif roll < 0.55:
            parent[key] = "DIGITS"
        elif roll < 0.62:
            parent[key] = rng.choice(["NAN", "INF", "-INF"])
        else:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    text = json.dumps(data)
    text = text.replace('"DIGITS"', "9" * 5000)
    for name, literal in (("NAN", "NaN"), ("-INF", "-Infinity"), ("INF", "Infinity")):
        text = text.replace(f'"{name}"', literal)
    return text


def fuzz(cases: int, seed: int) -> tuple[int, int, list[str]]:
    """(read, refused, findings) over `cases` damaged results."""
    rng = random.Random(seed)
    documents = seeds()
    read = refused = 0
    findings: list[str] = []
    for case in range(cases):
        text = mutate(rng, rng.choice(documents))
        try:
            LoadResult.from_json(text)
        except ValueError:
            refused += 1
        except Exception as exc:  # any other exception is what the fuzz looks for
            findings.append(f"case {case}: {type(exc).__name__}: {exc}"[:300])
        else:
            read += 1
    return read, refused, findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    read, refused, findings = fuzz(args.cases, args.seed)
    print(
        f"{args.cases} cases in {time.perf_counter() - began:.0f} s: {read} read, "
        f"{refused} refused with a ValueError, {len(findings)} other exceptions"
    )
    for finding in findings[:20]:
        print(" ", finding)


if __name__ == "__main__":
    main()
