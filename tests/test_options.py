"""Settings where pytest users put them: ini keys, environment variables, the command line.

Inner runs target a real aiohttp server on 127.0.0.1 that answers only requests routed to the
iris model by a ``Seldon-Model`` header (as Seldon Core 2's mesh does), so a suite that forgets
its header sees errors, and one whose settings never arrive sees no server at all.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from aiohttp import web
from servers import V2_OK, ClosedPort, ServerThread, json_response


async def routed_by_header(request: web.Request) -> web.Response:
    await request.read()
    if request.headers.get("Seldon-Model") != "iris":
        return json_response(b'{"error":"no route"}', 404)
    return json_response(V2_OK)


@pytest.fixture(scope="module")
def mesh_url():
    with ServerThread(routed_by_header) as server:
        yield server.url


@pytest.fixture
def dead_url():
    with ClosedPort() as closed:
        yield closed.url


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SELDON_LOAD_URL", "SELDON_LOAD_HEADERS", "SELDON_LOAD_MODEL"):
        monkeypatch.delenv(name, raising=False)


SUITE = """
import pytest

def test_settings(pytestconfig, seldon_endpoint, replay_file, load_run):
    print("url", seldon_endpoint.base_url)
    print("timeout", pytestconfig.getoption("load_timeout"))
    print("connections", pytestconfig.getoption("load_connections"))
    result = load_run(seldon_endpoint, replay_file.prediction(seldon_endpoint, num=5),
                      rate=20, duration=0.5)
    print("errors", result.errors, "of", result.requests)
    assert result.errors == 0
"""


def _ini(**keys: str) -> str:
    lines = ["[pytest]", "asyncio_default_fixture_loop_scope = function"]
    lines += [f"{key} = {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def _printed(result: pytest.RunResult, name: str) -> str:
    for line in result.stdout.lines:
        found = re.match(rf"(?:\S+\.py )?{name} (.*)$", line)
        if found:
            return found.group(1)
    raise AssertionError(f"{name} not printed:\n{result.stdout.str()}")


def test_a_suite_configured_only_in_pytest_ini_runs_against_its_target(pytester, mesh_url):
    pytester.makeini(
        _ini(
            seldon_url=mesh_url,
            seldon_header="\n    Seldon-Model: iris\n    X-Team: search",
            load_timeout="1m30s",
            load_connections="8",
        )
    )
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    assert _printed(result, "url") == mesh_url
    assert _printed(result, "timeout") == "90.0"
    assert _printed(result, "connections") == "8"


def test_pyproject_tool_pytest_ini_options_is_read(pytester, mesh_url):
    pytester.makepyprojecttoml(
        textwrap.dedent(
            f"""
            [tool.pytest.ini_options]
            asyncio_default_fixture_loop_scope = "function"
            seldon_url = "{mesh_url}"
            seldon_header = ["Seldon-Model:iris"]
            load_timeout = "2s"
            """
        )
    )
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    assert _printed(result, "timeout") == "2.0"


def test_without_the_header_the_mesh_routes_nothing(pytester, mesh_url):
    """The control for the tests above: the header is what makes the runs pass."""
    pytester.makeini(_ini(seldon_url=mesh_url))
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(failed=1)
    assert _printed(result, "errors").startswith("10 of 10")


def test_the_command_line_wins_over_the_ini_file(pytester, mesh_url, dead_url):
    pytester.makeini(
        _ini(seldon_url=dead_url, seldon_header="Seldon-Model:wrong", load_timeout="1m30s")
    )
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-s",
        f"--seldon-url={mesh_url}",
        "--seldon-header",
        "Seldon-Model:iris",
        "--load-timeout=3s",
    )
    result.assert_outcomes(passed=1)
    assert _printed(result, "url") == mesh_url
    assert _printed(result, "timeout") == "3.0"


def test_the_environment_sits_between_ini_and_command_line(
    pytester, monkeypatch, mesh_url, dead_url
):
    pytester.makeini(_ini(seldon_url=dead_url, load_timeout="4s"))
    pytester.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("SELDON_LOAD_URL", mesh_url)
    monkeypatch.setenv("SELDON_LOAD_HEADERS", "Seldon-Model: iris\nX-Team: search")
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    assert _printed(result, "url") == mesh_url
    assert _printed(result, "timeout") == "4.0"
    result = pytester.runpytest("-p", "no:cacheprovider", "-s", f"--seldon-url={dead_url}")
    result.assert_outcomes(failed=1)
    assert _printed(result, "url") == dead_url


def test_load_timeout_takes_go_durations_on_the_command_line(pytester, mesh_url):
    pytester.makeini(_ini(seldon_url=mesh_url, seldon_header="Seldon-Model:iris"))
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s", "--load-timeout", "1m30s")
    result.assert_outcomes(passed=1)
    assert _printed(result, "timeout") == "90.0"


@pytest.mark.parametrize(
    ("keys", "env", "args", "words"),
    [
        ({"load_timeout": "soon"}, {}, [], ["ini key load_timeout", "--load-timeout", "'soon'"]),
        ({"load_connections": "0"}, {}, [], ["ini key load_connections", "at least 1"]),
        ({"seldon_protocol": "v3"}, {}, [], ["ini key seldon_protocol", "'v3'", "'v2'"]),
        ({"load_allow_lag": "maybe"}, {}, [], ["ini key load_allow_lag", "true or false"]),
        ({"seldon_header": "Seldon-Model"}, {}, [], ["ini key seldon_header", "NAME:VALUE"]),
        ({}, {"SELDON_LOAD_URL": "localhost:8080"}, [], ["SELDON_LOAD_URL", "--seldon-url"]),
        ({}, {}, ["--seldon-header", "Authorization Bearer s3cr3t"], ["--seldon-header"]),
        ({}, {}, ["--seldon-header", "Seldon-Model"], ["--seldon-header", "NAME:VALUE"]),
        ({}, {}, ["--load-timeout", "1m30"], ["--load-timeout", "'1m30'"]),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_where_it_came_from(
    pytester, monkeypatch, keys, env, args, words
):
    pytester.makeini(_ini(**keys))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_suite="def test_nothing(seldon_endpoint):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    for word in words:
        assert word in errors, errors
    assert "s3cr3t" not in errors + result.stdout.str()


def test_a_url_from_the_environment_reaches_the_endpoint(pytester, monkeypatch, mesh_url):
    """The library check of the URL applies to every source (an ini typo is caught)."""
    pytester.makeini(_ini(seldon_url="not a url"))
    pytester.makepyfile(test_suite="def test_nothing(seldon_endpoint):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != pytest.ExitCode.OK
    monkeypatch.setenv("SELDON_LOAD_URL", mesh_url)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_help_groups_the_options_and_lists_the_ini_keys(pytester):
    pytester.makeini(_ini())
    text = pytester.runpytest("--help").stdout.str()
    titles = [
        "seldon-load target (",
        "seldon-load load (",
        "seldon-load cluster (",
        "seldon-load Iago (",
        "seldon-load baselines (",
        "seldon-load reports (",
    ]
    positions = [text.find(title) for title in titles]
    assert all(p >= 0 for p in positions), text
    assert positions == sorted(positions)
    ends = [*positions[1:], len(text)]
    sections = {title: text[a:b] for title, a, b in zip(titles, positions, ends, strict=True)}
    assert "--iago-image" in sections["seldon-load Iago ("]
    assert "--seldon-kubeconfig" in sections["seldon-load cluster ("]
    assert "--load-baseline-compare" in sections["seldon-load baselines ("]
    assert "--load-html" in sections["seldon-load reports ("]
    assert "--seldon-url" in sections["seldon-load target ("]
    for key in ("seldon_url ", "load_timeout ", "iago_image ", "load_baseline_dir "):
        assert f"\n  {key}" in text, key


def _no_kubernetes_conftest() -> str:
    return "import sys\nsys.modules['kubernetes'] = None  # as in an install without it\n"


def test_cluster_fixtures_without_kubernetes_skip_or_fail_saying_what_to_install(pytester):
    pytester.makeini(_ini())
    pytester.makeconftest(_no_kubernetes_conftest())
    pytester.makepyfile(test_needs_a_cluster="def test_it(seldon_cluster):\n    pass\n")
    skipped = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    skipped.assert_outcomes(skipped=1)
    assert "pip install 'pytest-seldon-load[cluster]'" in skipped.stdout.str()
    failed = pytester.runpytest("-p", "no:cacheprovider", "--seldon-deployment=iris")
    failed.assert_outcomes(errors=1)
    assert (
        "pip install 'pytest-seldon-load[cluster]' (asked for by --seldon-deployment)"
        in failed.stdout.str()
    )


def test_the_base_install_never_imports_kubernetes():
    code = (
        "import sys, pytest_seldon_load\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_seldon_url_session_never_imports_kubernetes(pytester, mesh_url):
    pytester.makeini(_ini(seldon_url=mesh_url, seldon_header="Seldon-Model:iris"))
    pytester.makepyfile(
        test_suite=SUITE
        + """

def test_after_the_run():
    loaded = sorted(m for m in __import__("sys").modules if m.split(".")[0] == "kubernetes")
    assert loaded == []
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
