"""Fuzz the replay-line parser: what `replay check` refuses, a run refuses; nothing unsafe is sent.

Seeded random lines, built from replay-line pieces (methods, targets, headers, bodies) with
control characters, whitespace, non-Latin-1 text and broken URLs spliced in, are fed to both
readers of a replay file:

* ``seldon-load replay check`` (`cli.replay.check_replay`), which lists bad lines;
* the run path: `ReplayFile` as the engine streams it, and the engine's own preparation of
  each request into the bytes the HTTP/1.1 transport writes (`engine._replay_cycle`).

Each case must be accepted by both or refused by both; the only exception either may raise is
`ReplayError`; and no prepared request head holds a control character outside its CRLF line
ends. Run alone for the 100,000-case figures; tests/test_replay_safety.py runs a few seconds of
the same cases.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pytest_seldon_load.cli.replay import check_replay
from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import EngineSettings, _replay_cycle
from pytest_seldon_load.replay import ReplayError, ReplayFile, parse_line
from pytest_seldon_load.transport import HttpTransport

SECRET = "Zq8SeCrEtVaLuE"
SECRET_NAMES = ("consumer_key=", "X-Api-Key:", "Authorization:")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FETCH", "post", ""]
TARGETS = [
    "/v2/models/iris/infer",
    "/api/v1.0/predictions",
    f"http://seldon-server/js/predict?json=%7B%22f1%22%3A+1.0%7D&consumer_key={SECRET}"
    "&jsonpCallback=j",
    "http://[::1/x",
    "http://[::1]:8080/v2/health/ready",
    "https://",
    "http://host:notaport/x",
    "/päth/ü?q=日本",
    "//double/slash",
    "relative/path",
    "/#fragment",
    "/x?a=1&b=%ZZ",
]
HEADERS = [
    "Content-Type:application/json",
    "Content-Type:text/plain",
    f"X-Api-Key:{SECRET}",
    f"Authorization:Bearer_{SECRET}",
    "Content-Length:5",
    "transfer-encoding:chunked",
    "X-A:1",
    "x-a:2",
    "Seldon-Model:iris",
    "Host:virtual.example",
    "X-Ü:1",
    "X-Latin:café",
    "X-Wide:日本",
    "X-Empty:",
    ":novalue",
]
BODIES = [
    '{"inputs":[{"name":"predict","shape":[1,1],"datatype":"FP64","data":[1.5]}]}',
    '{"data":{"ndarray":[[1,2]]}}',
    "{bad json",
    "[1,2,3]",
    "plain text body",
    '{"a":"\\u0000"}',
    "[" * 3000,
    '{"a":NaN}',
    "",
]
SPLICE = [
    "\r",
    "\x0b",
    "\x0c",
    "\x00",
    "\x85",
    "\u2028",
    "\t",
    "\x1b",
    "\x7f",
    "\x9b",
    "\xa0",
    " ",
    ":",
    "#",
    "/",
    "{",
    "%",
    "é",
    "日",
    "\U0001f600",
]
_INTACT_SECRET = re.compile(
    r"(?i)(consumer_key=|x-api-key:|authorization:)[ \t]*(bearer[_ ])?" + SECRET
)
"""A secret still marked as one: its name whole, its value whole right after it."""
_HEAD_CONTROL = re.compile(rb"[\x00-\x1f\x7f-\x9f]")


def random_line(rng: random.Random) -> str:
    """One replay line, mostly well formed, often with something hostile spliced in."""
    shape = rng.random()
    if shape < 0.1:
        return "".join(
            rng.choice([*SPLICE, "a", "1", "POST ", "/"]) for _ in range(rng.randrange(30))
        )
    words = []
    if shape < 0.45:
        words.append(rng.choice(TARGETS))
    else:
        words += [rng.choice(METHODS), rng.choice(TARGETS)]
        words += rng.sample(HEADERS, rng.randrange(4))
        body = rng.choice(BODIES)
        if body:
            words.append(body)
    line = " ".join(words)
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        position = rng.randrange(len(line) + 1)
        if not _inside_secret_name(line, position):
            line = line[:position] + rng.choice(SPLICE) + line[position:]
    return line.replace("\n", "")


def _only_marked_secrets(line: str) -> bool:
    """Whether the line holds the secret, and only where it is marked as one (a value whose
    name was mangled is no longer known to be secret, and may be shown)."""
    return SECRET in line and line.count(SECRET) == len(_INTACT_SECRET.findall(line))


def _inside_secret_name(line: str, position: int) -> bool:
    """Whether `position` falls inside a name that marks a secret (consumer_key=, X-Api-Key:,
    Authorization:): a mangled name no longer says its value is a secret, so the fuzzer keeps
    names whole and holds every error to never showing the secret."""
    for name in SECRET_NAMES:
        start = line.find(name)
        while start != -1:
            if start < position < start + len(name):
                return True
            start = line.find(name, start + 1)
    return False


@dataclass
class Figures:
    cases: int = 0
    accepted: int = 0
    refused: int = 0
    reasons: Counter = field(default_factory=Counter)
    other_exceptions: list[str] = field(default_factory=list)
    parity_mismatches: list[str] = field(default_factory=list)
    unsafe_heads: list[str] = field(default_factory=list)
    secrets_shown: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> bool:
        return not (
            self.other_exceptions
            or self.parity_mismatches
            or self.unsafe_heads
            or self.secrets_shown
        )


def _reason_kind(reason: str) -> str:
    kind = re.sub(r"^header \S+", "header NAME", reason)
    return re.sub(r"\(.*|'.*", "", kind).strip(" :;")[:70]


async def _run_path(path: Path, expected: int) -> tuple[list[int], list[bytes], int]:
    """The engine's path: stream the replay (bad lines skipped and counted) and prepare each
    request for the HTTP/1.1 transport."""
    numbers = [r.line_number for r in ReplayFile(path, skip_bad_lines=True)]
    replay = ReplayFile(path, skip_bad_lines=True)
    payloads: list[bytes] = []
    if expected:
        transport = HttpTransport(
            SeldonEndpoint("http://127.0.0.1:9", headers={"Authorization": "Bearer x"}),
            EngineSettings(connections=1),
        )
        try:
            payloads = list(itertools.islice(_replay_cycle(transport, replay), expected))
        finally:
            transport.close("cancelled")
    else:
        list(replay)
    return numbers, payloads, replay.bad_lines


def check_batch(lines: list[str], directory: Path, figures: Figures) -> None:
    """Feed `lines` to `replay check` and to the run path; record every disagreement."""
    for number, line in enumerate(lines, 1):
        try:
            parse_line(line, number)
        except ReplayError as exc:
            if SECRET in str(exc) and _only_marked_secrets(line):
                figures.secrets_shown.append(str(exc))
        except Exception as exc:  # any other exception is a finding
            figures.other_exceptions.append(f"{type(exc).__name__}: {exc} for {line[:80]!r}")
    path = directory / "fuzz.replay"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    figures.cases += len(lines)
    counts, bad = check_replay(path)
    good = sum(counts.values())
    bad_numbers = {number for number, _, _ in bad}
    for number, reason, shown in bad:
        figures.reasons[_reason_kind(reason)] += 1
        if (SECRET in reason or SECRET in shown) and _only_marked_secrets(lines[number - 1]):
            figures.secrets_shown.append(f"check: {reason}: {shown}")
    accepted, payloads, run_bad = asyncio.run(_run_path(path, good))
    figures.accepted += good
    figures.refused += len(bad)
    if run_bad != len(bad) or len(accepted) != good or bad_numbers & set(accepted):
        figures.parity_mismatches.append(
            f"check: {good} good, {len(bad)} bad; run: {len(accepted)} good, {run_bad} bad; "
            f"accepted by run, refused by check: {sorted(bad_numbers & set(accepted))[:5]}"
        )
    for payload in payloads:
        head = payload.split(b"\r\n\r\n", 1)[0]
        for head_line in head.split(b"\r\n"):
            if _HEAD_CONTROL.search(head_line):
                figures.unsafe_heads.append(repr(head_line[:80]))


def fuzz(cases: int, seed: int, batch: int = 2000, time_limit: float | None = None) -> Figures:
    rng = random.Random(seed)
    figures = Figures()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        while figures.cases < cases:
            if time_limit is not None and time.perf_counter() - started > time_limit:
                break
            size = min(batch, cases - figures.cases)
            check_batch([random_line(rng) for _ in range(size)], Path(directory), figures)
    figures.seconds = time.perf_counter() - started
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = fuzz(args.cases, args.seed)
    print(
        f"{figures.cases} cases (seed {args.seed}) in {figures.seconds:.1f}s: "
        f"{figures.accepted} accepted by both, {figures.refused} refused by both"
    )
    print(f"parity mismatches: {len(figures.parity_mismatches)}")
    print(f"exceptions other than ReplayError: {len(figures.other_exceptions)}")
    print(f"request heads with a control character: {len(figures.unsafe_heads)}")
    print(f"errors showing a secret: {len(figures.secrets_shown)}")
    for finding in (
        figures.parity_mismatches
        + figures.other_exceptions
        + figures.unsafe_heads
        + figures.secrets_shown
    )[:20]:
        print(f"  {finding}")
    print("refusals by reason:")
    for reason, count in figures.reasons.most_common():
        print(f"  {count:>7}  {reason}")
    return 0 if figures.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
