"""What `redact` masks, wherever a secret stands, and what it leaves readable."""

from __future__ import annotations

import pytest

from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.redact import (
    MASK,
    is_secret_header,
    is_secret_name,
    redact_headers,
    redact_text,
    redact_url,
    register_secret,
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # In a test id, after `[` and before `]` or another parameter.
        ("tests/test_a.py::test_x[consumer_key=SeCrEtKeY]", "SeCrEtKeY"),
        ("test_x[rate-consumer_key=SeCrEtKeY]", "SeCrEtKeY"),
        ("test_x[consumer_key=SeCrEtKeY-10]", "SeCrEtKeY"),
        # In a label, free text, a URL anywhere.
        ("load of consumer_key=SeCrEtKeY at 20/s", "SeCrEtKeY"),
        ("GET /js/predict?json=1&consumer_key=SeCrEtKeY&x=2", "SeCrEtKeY"),
        ("/js/predict?oauth_consumer_key=SeCrEtKeY", "SeCrEtKeY"),
        ("token=SeCrEtKeY", "SeCrEtKeY"),
        ("x_api_key=SeCrEtKeY", "SeCrEtKeY"),
        ("client-secret = SeCrEtKeY, next", "SeCrEtKeY"),
        ("PASSWORD=SeCrEtKeY", "SeCrEtKeY"),
        ("access_token=SeCrEtKeY", "SeCrEtKeY"),
        # Headers as replay lines and traces write them.
        ("POST /v2 X-Api-Key:SeCrEtKeY {}", "SeCrEtKeY"),
        ("Authorization: Bearer SeCrEtKeY", "SeCrEtKeY"),
        ("Authorization:Bearer_SeCrEtKeY", "SeCrEtKeY"),
        ("sent with bearer SeCrEtKeY.part2", "SeCrEtKeY"),
        ("Cookie: session=SeCrEtKeY", "SeCrEtKeY"),
        ("X-Auth-Token:SeCrEtKeY", "SeCrEtKeY"),
        # JSON and YAML (a kubeconfig's user).
        ('{"token": "SeCrEtKeY"}', "SeCrEtKeY"),
        ('{"client_secret":"SeCrEtKeY"}', "SeCrEtKeY"),
        ("    token: SeCrEtKeY", "SeCrEtKeY"),
        # URL credentials.
        ("http://user:SeCrEtKeY@host:8080/x", "SeCrEtKeY"),
    ],
)
def test_secrets_are_masked_wherever_they_stand(text, secret):
    masked = redact_text(text)
    assert secret not in masked and MASK in masked, masked


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=5",
        "key=value",
        "tests/test_a.py::test_rate[20-1s]",
        "p99 12.5ms rate=40/s",
        "GET /v2/models/iris/infer?x=1",
        "monkey=business",
    ],
)
def test_plain_text_stays_readable(text):
    assert redact_text(text) == text


def test_what_is_around_a_masked_value_stays():
    assert redact_text("test_x[consumer_key=K3y]") == "test_x[consumer_key=***]"
    assert redact_url("/p?a=1&token=T0k&b=2") == "/p?a=1&token=***&b=2"
    assert redact_text("POST /v2 X-Api-Key:K3y {}") == "POST /v2 X-Api-Key:*** {}"


def test_a_registered_secret_is_masked_in_any_form():
    register_secret("raw-registered-value-7731")
    assert "raw-registered-value-7731" not in redact_text("id test_x[raw-registered-value-7731]")
    register_secret("abc")  # too short to mask without masking everything
    assert redact_text("abcdef") == "abcdef"


def test_header_and_parameter_names():
    assert is_secret_header("Authorization") and is_secret_header("X-Tenant-Token")
    assert not is_secret_header("Content-Type") and not is_secret_header("Seldon-Model")
    assert redact_headers({"X-Api-Key": "k", "Seldon-Model": "iris"}) == {
        "X-Api-Key": MASK,
        "Seldon-Model": "iris",
    }
    assert is_secret_name("consumer_key") and is_secret_name("api_token")
    assert not is_secret_name("key") and not is_secret_name("max_tokens")


def test_url_credentials_become_basic_auth_and_leave_the_url():
    endpoint = SeldonEndpoint("http://al%40ice:pa%3Ass-w0rd-9@127.0.0.1:9000/prefix/")
    assert endpoint.base_url == "http://127.0.0.1:9000/prefix"
    # base64 of "al@ice:pa:ss-w0rd-9", as curl and requests send it
    assert endpoint.headers["Authorization"] == "Basic YWxAaWNlOnBhOnNzLXcwcmQtOQ=="
    for shown in (str(endpoint), repr(endpoint), redact_text(dict(endpoint.headers).__repr__())):
        assert "pa:ss-w0rd-9" not in shown and "YWxAaWNlOnBhOnNzLXcwcmQtOQ" not in shown, shown
    assert "pa:ss-w0rd-9" not in redact_text("the password was pa:ss-w0rd-9")


def test_url_credentials_and_an_authorization_header_are_refused_together():
    with pytest.raises(ValueError, match="give the credentials one way") as raised:
        SeldonEndpoint("http://u:hunter2-pw@127.0.0.1:9000", headers={"authorization": "x"})
    assert "hunter2-pw" not in str(raised.value)


def test_test_ids_and_failure_reports_carry_no_secret(pytester, monkeypatch):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_ids="""
import os
import pytest

KEYS = os.environ["SECRET_KEYS"].split(",")

@pytest.mark.parametrize("key", KEYS, ids=lambda key: f"token={key}")
def test_by_id(key):
    assert key != KEYS[1]

@pytest.mark.parametrize("consumer_key", KEYS)
def test_by_name(consumer_key):
    print("using", consumer_key)
    assert False
"""
    )
    monkeypatch.setenv("SECRET_KEYS", "FiRsTkEy-9911,SeCoNdKeY-9922")
    result = pytester.runpytest("-p", "no:cacheprovider", "-v", "-rA", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=3)
    shown = result.stdout.str() + result.stderr.str() + (pytester.path / "junit.xml").read_text()
    assert "FiRsTkEy-9911" not in shown and "SeCoNdKeY-9922" not in shown, shown
    # Four distinct, masked ids: colliding ones get a suffix.
    for nodeid in (
        "test_by_id[token=***] PASSED",
        "test_by_id[token=***-2] FAILED",
        "test_by_name[consumer_key=***",
    ):
        assert nodeid in result.stdout.str(), result.stdout.str()
