"""The relying-party example's verification of the device assertion (PyJWT against the stack's
/.well-known/jwks.json), against the local stack: a real assertion verifies; a tampered one, one
for another audience, an expired one and one carrying another sign-in's nonce are refused."""

import importlib.util
import json
import secrets

import jwt
import pytest

from test_stage_page import API, ROOT, admin, agent
from test_stage_page import http as api

pytestmark = pytest.mark.skipif(not API, reason="run through make test (scripts/stack-lib.sh exports ENDPOINT_API)")

AUDIENCE = "https://rp.example/app"


def example():
    spec = importlib.util.spec_from_file_location("rp_app", ROOT / "examples" / "relying-party" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory):
    """A passed plan's assertion, with the nonce its sign-in sent."""
    key = admin("key", "create")["key_id"]
    connector = admin("connector", "create", "--name", "assertions", "--challenge-key", key)["id"]
    stage = admin(
        "stage", "create", "--connector", connector, "--mode", "required", "--audience", AUDIENCE
    )["id"]
    token = admin("enrollment-token", "create", "--connector", connector)["key"]
    state = tmp_path_factory.mktemp("agent") / "agent.json"
    serial = f"RP-{secrets.token_hex(4)}"
    agent(state, "enroll", "--server", API, "--token", token, "--serial", serial, "--name", "rp-laptop")
    nonce = secrets.token_urlsafe(24)
    status, _, body = api("POST", "/v1/plans", {"stage": stage, "nonce": nonce, "audience": AUDIENCE})
    assert status == 201, body
    plan = json.loads(body)["plan"]
    outcome = json.loads(agent(state, "login", "--server", API, "--plan", plan))
    assert outcome["component"] == "xak-flow-redirect", outcome
    status, _, body = api("GET", f"/v1/plans/{plan}")
    assertion = json.loads(body)["assertion"]
    return assertion, nonce, serial


def app_for(audience=AUDIENCE):
    module = example()
    return module.App(module.EndpointStage(API, "us-east-1"), "unused", audience, API)


def test_the_example_accepts_a_real_assertion(signed_in):
    assertion, nonce, serial = signed_in
    claims = app_for().verify(assertion, nonce)
    assert claims["serial"] == serial and claims["nonce"] == nonce


def test_the_example_refuses_a_tampered_assertion(signed_in):
    assertion, nonce, _ = signed_in
    header, payload, signature = assertion.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["serial"] = "SOMEONE-ELSE"
    forged = ".".join([header, jwt.utils.base64url_encode(json.dumps(claims).encode()).decode(), signature])
    with pytest.raises(jwt.InvalidSignatureError):
        app_for().verify(forged, nonce)


def test_the_example_refuses_another_audience(signed_in):
    assertion, nonce, _ = signed_in
    with pytest.raises(jwt.InvalidAudienceError):
        app_for("https://other.example").verify(assertion, nonce)


def test_the_example_refuses_an_expired_assertion(signed_in, monkeypatch):
    assertion, nonce, _ = signed_in
    import datetime

    class Later(datetime.datetime):
        """PyJWT's clock, five minutes and a second from now."""

        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.now(tz) + datetime.timedelta(seconds=301)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    with pytest.raises(jwt.ExpiredSignatureError):
        app_for().verify(assertion, nonce)


def test_the_example_refuses_a_replayed_assertion(signed_in):
    assertion, _, _ = signed_in
    with pytest.raises(ValueError, match="another sign-in"):
        app_for().verify(assertion, secrets.token_urlsafe(24))
