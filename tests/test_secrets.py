"""No secret reaches any output: one real pytest session and the command line, with all four
kinds of secret present, every output scanned.

The secrets: a consumer key (in test ids, a label and replay lines), a bearer token and an
API key (endpoint headers, and a bad replay line), a URL password (``--seldon-url`` and
``--url``, sent as HTTP Basic auth) and a kubeconfig token (the emulated cluster's). The
outputs: the terminal (stdout and stderr), JUnit XML, the JSON report, the HTML reports, the
baseline, the GitHub step summary, ``seldon-load run --out``, and every error message and
captured log line on the way.
"""

from __future__ import annotations

import base64

import pytest
from cli_runner import run_cli
from emulated_cluster.api import EmulatedKubernetes
from servers import by_path

CONSUMER_KEY = "CkSeCrEt4417x"
BEARER = "BeArErTok9921x"
API_KEY = "ApIkEy3318x"
URL_USER, URL_PASSWORD = "alice", "UrLpAsS5530x"
BASIC = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
KUBE_TOKEN = "KuBeToK7781x"
SECRETS = (CONSUMER_KEY, BEARER, API_KEY, URL_PASSWORD, BASIC, KUBE_TOKEN)

# The user's test module reads its secrets from the environment, as a CI job passes them.
SUITE = """
import os

import pytest
from pytest_seldon_load import ReplayFile, SeldonEndpoint, assert_p50_below

KEY = os.environ["SECRET_CONSUMER_KEY"]
HEADERS = {
    "Authorization": "Bearer " + os.environ["SECRET_BEARER"],
    "X-Api-Key": os.environ["SECRET_API_KEY"],
}
LAX = {"rate": 20, "duration": 1, "lag_threshold_ms": 200}


def keyed_replay(replay_file, key):
    return replay_file.from_requests([f"/js/predict?json=%7B%7D&consumer_key={key}"])


@pytest.mark.parametrize("key", [KEY], ids=lambda key: f"consumer_key={key}")
def test_keyed_id(seldon_endpoint, replay_file, load_run, key):
    load_run(seldon_endpoint, keyed_replay(replay_file, key), **LAX)


@pytest.mark.parametrize("consumer_key", [KEY])
def test_keyed_parameter(seldon_endpoint, replay_file, load_run, consumer_key):
    result = load_run(
        seldon_endpoint, keyed_replay(replay_file, consumer_key),
        label=f"legacy consumer_key={consumer_key}", **LAX,
    )
    assert_p50_below(result, "0.001ms")  # fails: the failure message is scanned too


def test_headers(seldon_endpoint, replay_file, load_run):
    endpoint = SeldonEndpoint(seldon_endpoint.base_url, headers=HEADERS)
    load_run(endpoint, replay_file.from_requests(["/delay/1"]), **LAX)


def test_a_bad_replay_line(seldon_endpoint, load_run, replay_file, tmp_path):
    bad = tmp_path / "bad.replay"
    bad.write_text(
        "FETCH /v2 X-Api-Key:" + os.environ["SECRET_API_KEY"]
        + " Authorization:Bearer_" + os.environ["SECRET_BEARER"] + "\\n"
    )
    load_run(seldon_endpoint, ReplayFile(bad), **LAX)


def test_the_cluster(seldon_cluster):
    seldon_cluster.deployment("missing")
"""


@pytest.fixture(scope="module")
def emulator():
    with EmulatedKubernetes(pod_start_delay=0.05) as cluster:
        yield cluster


@pytest.fixture
def server():
    """A V2 model server that keeps what it was sent, to show the secrets were sent."""
    from servers import ServerThread

    received: list[tuple[str, str, str]] = []

    async def handler(request):
        received.append(
            (
                request.path_qs,
                request.headers.get("Authorization", ""),
                request.headers.get("X-Api-Key", ""),
            )
        )
        return await by_path(request)

    with ServerThread(handler) as running:
        running.received = received
        yield running


def test_no_secret_reaches_any_output(pytester, server, emulator, monkeypatch):
    out = pytester.path / "out"
    out.mkdir()
    monkeypatch.setenv("SECRET_CONSUMER_KEY", CONSUMER_KEY)
    monkeypatch.setenv("SECRET_BEARER", BEARER)
    monkeypatch.setenv("SECRET_API_KEY", API_KEY)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(out / "step-summary.md"))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_suite=SUITE)
    kubeconfig = emulator.write_kubeconfig(out / "kubeconfig", namespace="ns", token=KUBE_TOKEN)
    url_with_password = server.url.replace("://", f"://{URL_USER}:{URL_PASSWORD}@")
    texts: dict[str, str] = {}

    # --- a pytest session -------------------------------------------------------------
    session = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-vv",
        "-rA",
        "--log-level=DEBUG",
        f"--seldon-url={url_with_password}",
        f"--seldon-kubeconfig={kubeconfig}",
        f"--load-json={out / 'session.json'}",
        f"--load-html={out / 'session.html'}",
        f"--junitxml={out / 'junit.xml'}",
        "--load-baseline-save=main",
        f"--load-baseline-dir={out / 'baselines'}",
        timeout=120,
    )
    texts["pytest stdout"] = session.stdout.str()
    texts["pytest stderr"] = session.stderr.str()
    session.assert_outcomes(passed=2, failed=3)
    assert "consumer_key=***" in texts["pytest stdout"], texts["pytest stdout"]
    assert "test_a_bad_replay_line" in texts["pytest stdout"]
    assert "unknown method" in texts["pytest stdout"]  # the replay error was shown, masked

    # --- the command line: run (URL password, API key, keyed replay), compare, report -------
    keyed = out / "keyed.replay"
    keyed.write_text(f"/js/predict?json=%7B%7D&consumer_key={CONSUMER_KEY}\n")
    bad = out / "bad.replay"
    bad.write_text(f"FETCH /v2 X-Api-Key:{API_KEY} Authorization:Bearer_{BEARER}\n")
    commands = {
        "run": (
            "run",
            *("--url", url_with_password, "--replay", keyed, "--rate", "20"),
            *("--duration", "1s", "--header", f"X-Api-Key:{API_KEY}", "--out", out / "run.json"),
        ),
        "run with a bearer token and a bad replay": (
            "run",
            *("--url", server.url, "--replay", bad, "--rate", "20", "--duration", "1s"),
            *("--header", f"Authorization:Bearer {BEARER}"),
        ),
        "run with two kinds of credentials": (
            "run",
            *("--url", url_with_password, "--replay", keyed, "--rate", "20"),
            *("--duration", "1s", "--header", f"Authorization:Bearer {BEARER}"),
        ),
        "replay check": ("replay", "check", bad),
        "compare": ("compare", out / "baselines" / "main.json", out / "session.json"),
        "compare run": ("compare", out / "run.json", out / "run.json"),
        "report": (
            "report",
            out / "session.json",
            *("-o", out / "cli-report.html", "--baseline", out / "baselines" / "main.json"),
        ),
    }
    codes = {}
    for name, arguments in commands.items():
        done = run_cli(*arguments, cwd=pytester.path)
        codes[name] = done.returncode
        texts[f"{name} stdout"] = done.stdout
        texts[f"{name} stderr"] = done.stderr
    assert codes["run"] == 0 and codes["report"] == 0, texts
    assert codes["replay check"] == 1 and "unknown method" in texts["replay check stdout"]
    assert codes["run with a bearer token and a bad replay"] == 2
    assert codes["run with two kinds of credentials"] == 2
    assert "credentials one way" in texts["run with two kinds of credentials stderr"]

    # --- every file written -------------------------------------------------------------------
    written = {
        "junit.xml",
        "session.json",
        "session.html",
        "step-summary.md",
        "baselines/main.json",
        "run.json",
        "cli-report.html",
    }
    files = {str(p.relative_to(out)): p for p in out.rglob("*") if p.is_file()}
    assert written <= set(files), sorted(files)
    for name, path in files.items():
        if name not in ("kubeconfig", "keyed.replay", "bad.replay"):  # the inputs
            texts[name] = path.read_text(encoding="utf-8", errors="replace")
    assert "consumer_key=***" in texts["session.json"]
    assert "consumer_key=***" in texts["baselines/main.json"]
    assert "consumer_key=***" in texts["step-summary.md"]

    # --- the secrets were sent, and are nowhere to be seen -------------------------------------
    sent = server.received
    assert any(CONSUMER_KEY in path for path, _, _ in sent)
    assert any(auth == f"Basic {BASIC}" for _, auth, _ in sent)
    assert any(auth == f"Bearer {BEARER}" for _, auth, _ in sent)
    assert any(key == API_KEY for _, _, key in sent)
    leaks = [
        (secret, where, text[max(0, text.find(secret) - 80) : text.find(secret) + 40])
        for where, text in texts.items()
        for secret in SECRETS
        if secret in text
    ]
    assert not leaks, leaks
