"""The OpenID provider (the device step) with real clients, against the local stack of make
test: Authlib runs the authorization code flow with PKCE S256 and private_key_jwt (or a client
secret), Debian's Chromium with the stand-in extension runs the hosted page, PyJWT checks the ID
token against our discovery document and JWKS. The Entra profile runs with a stand-in tenant
(an RSA key, an expired id_token_hint signed by it, the documented form POST). The device part
of the other cases runs with `endpoint-agent login` (the simulator's browser and agent).
"""

import base64
import hashlib
import http.server
import json
import re
import secrets
import threading
import time
import urllib.parse

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from helpers import API, admin, agent, chromium_with_extension, load_until

pytestmark = pytest.mark.skipif(not API, reason="run through make test (scripts/stack-lib.sh exports ENDPOINT_API)")

CALLBACK = "http://127.0.0.1:8765/callback"
ENTRA_REDIRECT = "https://login.microsoftonline.com/common/federation/externalauthprovider"
TENANT = "7a1b2c3d-0000-4000-8000-00000000e17a"
OTHER_TENANT = "7a1b2c3d-0000-4000-8000-0000000000ff"
ENTRA_APP = "5f2e9d1c-1111-4222-8333-444455556666"
ACR = "possessionorinherence"
CLAIMS = json.dumps({"id_token": {"acr": {"essential": True, "values": [ACR]}, "amr": {"essential": True, "values": ["face", "fido", "hwk", "swk"]}}})


def discovery():
    r = requests.get(API + "/.well-known/openid-configuration", timeout=30)
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    return r.json()


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(private_key, kid):
    pem = private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = JsonWebKey.import_key(pem, {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256"}).as_dict()
    return {"keys": [jwk]}


def pem_of(private_key):
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A required stage, a device enrolled by the simulator on it, a code client with
    private_key_jwt (its key made here), a code client with a secret, and an Entra client
    whose stand-in tenant's keys are a file."""
    tmp = tmp_path_factory.mktemp("oidc")
    key = admin("key", "create")["key_id"]
    connector = admin("connector", "create", "--name", "oidc", "--challenge-key", key, "--idle-timeout", "2s")["id"]
    stage = admin("stage", "create", "--connector", connector, "--mode", "required")["id"]
    token = admin("enrollment-token", "create", "--connector", connector)["key"]
    state = tmp / "agent.json"
    serial = f"OIDC-{secrets.token_hex(4)}"
    agent(state, "enroll", "--server", API, "--token", token, "--serial", serial, "--name", "oidc-laptop")
    client_key = rsa_key()
    (tmp / "client-jwks.json").write_text(json.dumps(jwks_of(client_key, "rp-1")))
    pkj = admin(
        "oidc", "client", "create", "--name", "okta", "--profile", "code", "--stage", stage,
        "--redirect-uri", CALLBACK, "--auth", "private_key_jwt", "--jwks-file", str(tmp / "client-jwks.json"),
    )
    assert pkj["client_secret"] is None
    secret_client = admin(
        "oidc", "client", "create", "--name", "keycloak", "--profile", "code", "--stage", stage,
        "--redirect-uri", CALLBACK, "--auth", "client_secret_post", "--alg", "ES256",
    )
    tenant_key = rsa_key()
    (tmp / "tenant-jwks.json").write_text(json.dumps(jwks_of(tenant_key, "tenant-1")))
    entra = admin(
        "oidc", "client", "create", "--name", "entra", "--profile", "entra-eam", "--stage", stage,
        "--redirect-uri", ENTRA_REDIRECT, "--entra-app-id", ENTRA_APP, "--entra-tenant", TENANT,
        "--entra-jwks-file", str(tmp / "tenant-jwks.json"),
    )
    return {
        "stage": stage, "state": state, "serial": serial, "device_id": admin("device", "show", serial)["id"],
        "pkj": pkj["client_id"], "client_key": client_key,
        "secret_client": secret_client["client_id"], "secret": secret_client["client_secret"],
        "entra": entra["client_id"], "tenant_key": tenant_key, "tmp": tmp,
    }


def verify_id_token(token, client_id, nonce, alg="RS256"):
    """PyJWT against our discovery's jwks_uri, exactly: iss, aud, exp, nonce, one amr."""
    meta = discovery()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    keys = requests.get(meta["jwks_uri"], timeout=30).json()["keys"]
    jwk = next(k for k in keys if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, key, algorithms=[alg], audience=client_id, issuer=meta["issuer"], options={"require": ["exp", "iat", "sub"]})
    assert claims["nonce"] == nonce
    assert claims["exp"] - claims["iat"] <= 300
    assert isinstance(claims["amr"], list) and len(claims["amr"]) == 1
    return claims


def authorize_url(client_id, verifier, state, nonce, redirect=CALLBACK):
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    q = {
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code", "scope": "openid profile",
        "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256",
    }
    return API + "/oidc/authorize?" + urllib.parse.urlencode(q)


def run_device_step(world, location):
    """The device part of a plan the provider created: `endpoint-agent login` on the plan the
    hosted page's URL names; then the browser's return (the plan's redirect)."""
    plan = re.search(r"/v1/plans/([^/]+)/page", location).group(1)
    outcome = json.loads(agent(world["state"], "login", "--server", API, "--plan", plan))
    return plan, outcome


def resume(plan):
    return requests.get(f"{API}/oidc/plans/{plan}/resume", allow_redirects=False, timeout=30)


def code_of(world, client_id, verifier, state, nonce):
    r = requests.get(authorize_url(client_id, verifier, state, nonce), allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    plan, outcome = run_device_step(world, r.headers["location"])
    assert outcome["component"] == "xak-flow-redirect", outcome
    back = resume(plan)
    assert back.status_code == 303
    q = urllib.parse.parse_qs(urllib.parse.urlparse(back.headers["location"]).query)
    assert q["state"] == [state]
    return back.headers["location"], q["code"][0]


def test_discovery_has_exactly_the_contracts_fields():
    meta = discovery()
    assert meta["issuer"] == API
    assert meta["authorization_endpoint"] == API + "/oidc/authorize"
    assert meta["token_endpoint"] == API + "/oidc/token"
    assert meta["userinfo_endpoint"] == API + "/oidc/userinfo"
    assert meta["jwks_uri"] == API + "/oidc/jwks"
    assert meta["response_types_supported"] == ["code", "id_token"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "private_key_jwt"}
    assert meta["claims_parameter_supported"] is True


def test_the_rsa_jwk_carries_a_certificate_of_the_same_key_signed_by_it():
    keys = requests.get(API + "/oidc/jwks", timeout=30).json()["keys"]
    rsa_jwk = next(k for k in keys if k["kty"] == "RSA")
    assert any(k["kty"] == "EC" and k["crv"] == "P-256" for k in keys)
    cert = x509.load_der_x509_certificate(base64.b64decode(rsa_jwk["x5c"][0]))
    public = jwt.PyJWK(rsa_jwk).key
    assert cert.public_key().public_numbers() == public.public_numbers()
    # Self-signed by that very key (the KMS key signed it).
    public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)


def test_code_flow_with_pkce_and_private_key_jwt_in_chromium(world):
    """Authlib builds the request and redeems the code; Chromium runs the hosted page with the
    stand-in extension and the simulator's native host."""
    meta = discovery()
    session = OAuth2Session(
        world["pkj"], pem_of(world["client_key"]), scope="openid profile email", redirect_uri=CALLBACK,
        code_challenge_method="S256", token_endpoint_auth_method="private_key_jwt",
    )
    session.register_client_auth_method(PrivateKeyJWT(meta["token_endpoint"], headers={"kid": "rp-1"}))
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    # The relying party's callback: a real listener (a redirect's target is not routable in
    # Playwright), which keeps the URL the browser came back with.
    seen = []

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append("http://127.0.0.1:8765" + self.path)
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<p>signed in</p>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 8765), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with chromium_with_extension(world["state"]) as context:
            page = context.new_page()
            # The hosted page loaded again if the local emulator held its module (people.py).
            load_until(page, url, lambda timeout: page.wait_for_url(CALLBACK + "**", timeout=timeout))
            page.close()
    finally:
        server.shutdown()
        server.server_close()
    token = session.fetch_token(meta["token_endpoint"], authorization_response=seen[0], code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["expires_in"] <= 300
    claims = verify_id_token(token["id_token"], world["pkj"], nonce)
    assert claims["sub"] == world["device_id"]
    assert claims["acr"] == "urn:endpoint-stage:device" and claims["amr"] == ["hwk"]
    assert claims["device"]["serial"] == world["serial"] and claims["device"]["id"] == world["device_id"]
    info = session.get(meta["userinfo_endpoint"])
    assert info.status_code == 200 and info.json()["sub"] == world["device_id"]


def test_client_secret_post_es256_and_the_codes_single_use(world):
    verifier, state, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    _, code = code_of(world, world["secret_client"], verifier, state, nonce)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
            "client_id": world["secret_client"], "client_secret": world["secret"]}
    r = requests.post(API + "/oidc/token", data=form, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    verify_id_token(r.json()["id_token"], world["secret_client"], nonce, alg="ES256")
    replayed = requests.post(API + "/oidc/token", data=form, timeout=30)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    wrong_secret = requests.post(API + "/oidc/token", data={**form, "client_secret": "x" * 43}, timeout=30)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


def test_a_wrong_pkce_verifier_spends_the_code(world):
    verifier, state, nonce = secrets.token_urlsafe(48), "s1", "n1"
    _, code = code_of(world, world["secret_client"], verifier, state, nonce)
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "client_id": world["secret_client"], "client_secret": world["secret"]}
    wrong = requests.post(API + "/oidc/token", data={**base, "code_verifier": secrets.token_urlsafe(48)}, timeout=30)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    right = requests.post(API + "/oidc/token", data={**base, "code_verifier": verifier}, timeout=30)
    assert right.status_code == 400 and right.json()["error"] == "invalid_grant"


def test_a_replayed_client_assertion_is_refused(world):
    meta = discovery()
    assertion = private_key_jwt_sign(pem_of(world["client_key"]), world["pkj"], meta["token_endpoint"], header={"kid": "rp-1"})
    results = []
    for _ in range(2):
        verifier = secrets.token_urlsafe(48)
        _, code = code_of(world, world["pkj"], verifier, "s", "n")
        r = requests.post(API + "/oidc/token", timeout=30, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
        })
        results.append(r)
    assert results[0].status_code == 200, results[0].text
    assert results[1].status_code == 401 and results[1].json()["error"] == "invalid_client"


def test_an_unregistered_redirect_uri_or_client_is_a_400_page_never_a_redirect(world):
    for url in (
        authorize_url(world["pkj"], secrets.token_urlsafe(48), "s", "n", redirect="http://127.0.0.1:8766/callback"),
        authorize_url(world["pkj"], secrets.token_urlsafe(48), "s", "n", redirect=CALLBACK + "/"),
        authorize_url("no-such-client", secrets.token_urlsafe(48), "s", "n"),
    ):
        r = requests.get(url, allow_redirects=False, timeout=30)
        assert r.status_code == 400
        assert "location" not in r.headers
        assert r.headers["content-type"].startswith("text/html")


def test_no_pkce_goes_back_as_invalid_request(world):
    q = {"client_id": world["pkj"], "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid", "state": "st"}
    r = requests.get(API + "/oidc/authorize?" + urllib.parse.urlencode(q), allow_redirects=False, timeout=30)
    assert r.status_code == 303
    q = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["location"]).query)
    assert q["error"] == ["invalid_request"] and q["state"] == ["st"]


def test_a_denied_device_goes_back_as_access_denied_with_the_reason(world):
    admin("device", "lock", world["serial"], "--reason", "stolen")
    try:
        r = requests.get(authorize_url(world["pkj"], secrets.token_urlsafe(48), "st-denied", "n"), allow_redirects=False, timeout=30)
        plan, outcome = run_device_step(world, r.headers["location"])
        assert outcome["component"] == "ak-stage-access-denied"
        back = resume(plan)
        q = urllib.parse.parse_qs(urllib.parse.urlparse(back.headers["location"]).query)
        assert q["error"] == ["access_denied"] and q["state"] == ["st-denied"]
        assert q["error_description"] == ["This device has been locked by an administrator."]
        # The answer goes back once.
        assert resume(plan).status_code == 400
    finally:
        admin("device", "unlock", world["serial"])


def hint(world, *, tid=TENANT, iat=None, key=None, sub="entra-pairwise-sub-1"):
    now = int(time.time())
    iat = now - 120 if iat is None else iat
    claims = {
        "iss": f"https://login.microsoftonline.com/{tid}/v2.0", "aud": ENTRA_APP, "tid": tid, "oid": "0000-oid",
        "sub": sub, "preferred_username": "ada@example.com", "iat": iat, "nbf": iat, "exp": iat + 1,
    }
    return jwt.encode(claims, pem_of(key or world["tenant_key"]), algorithm="RS256", headers={"kid": "tenant-1"})


def entra_post(world, id_token_hint, state="entra-state", nonce="entra-nonce"):
    form = {
        "scope": "openid", "response_type": "id_token", "response_mode": "form_post", "client_id": world["entra"],
        "redirect_url": ENTRA_REDIRECT, "nonce": nonce, "state": state, "id_token_hint": id_token_hint,
        "claims": CLAIMS, "client-request-id": "b5e2a3c4-0000-4000-8000-000000000001",
    }
    return requests.post(API + "/oidc/authorize", data=form, allow_redirects=False, timeout=30)


def posted_fields(html):
    assert f'action="{ENTRA_REDIRECT}"' in html
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def test_entra_external_authentication_method(world):
    """Entra's documented form POST with an expired hint (iat 5 minutes ago, exp past): the ID
    token is posted back with the state; sub is the hint's, one acr from the claims, one amr,
    RS256 with a key whose JWK carries x5c."""
    r = entra_post(world, hint(world, iat=int(time.time()) - 300))
    assert r.status_code == 303, r.text
    plan, outcome = run_device_step(world, r.headers["location"])
    assert outcome["component"] == "xak-flow-redirect"
    back = resume(plan)
    assert back.status_code == 200
    assert "form-action https://login.microsoftonline.com" in back.headers["content-security-policy"]
    fields = posted_fields(back.text)
    assert fields["state"] == "entra-state"
    claims = verify_id_token(fields["id_token"], world["entra"], "entra-nonce")
    assert claims["sub"] == "entra-pairwise-sub-1"
    assert claims["acr"] == ACR and claims["amr"] == ["hwk"]
    assert "device" not in claims
    keys = requests.get(API + "/oidc/jwks", timeout=30).json()["keys"]
    assert all("x5c" in k for k in keys if k["kid"] == jwt.get_unverified_header(fields["id_token"])["kid"])


@pytest.mark.parametrize("case", ["too_old", "foreign_tenant", "other_key"])
def test_entra_hints_that_fail_are_access_denied_with_the_state(world, case):
    if case == "too_old":
        token = hint(world, iat=int(time.time()) - 3600)
    elif case == "foreign_tenant":
        token = hint(world, tid=OTHER_TENANT)
    else:
        token = hint(world, key=rsa_key())
    r = entra_post(world, token, state=f"st-{case}")
    assert r.status_code == 200
    fields = posted_fields(r.text)
    assert fields["error"] == "access_denied" and fields["state"] == f"st-{case}"
    assert "id_token" not in fields


def test_a_client_that_matches_owners_passes_the_owners_device_and_denies_anyone_elses(world):
    """`--match-owner preferred_username`: the device's owners (device set-owners) must include
    the user the login_hint names; the ID token then carries the owner's names."""
    client = admin(
        "oidc", "client", "create", "--name", "okta-owners", "--profile", "code", "--stage", world["stage"],
        "--redirect-uri", CALLBACK, "--auth", "client_secret_basic", "--match-owner", "preferred_username",
    )
    admin("device", "set-owners", world["serial"], "ada@example.com")
    try:
        outcomes = {}
        for user in ("Ada@example.com", "bob@example.com"):
            verifier = secrets.token_urlsafe(48)
            url = authorize_url(client["client_id"], verifier, f"st-{user}", "n") + "&login_hint=" + urllib.parse.quote(user)
            r = requests.get(url, allow_redirects=False, timeout=30)
            plan, outcome = run_device_step(world, r.headers["location"])
            assert outcome["component"] == "xak-flow-redirect", outcome
            q = urllib.parse.parse_qs(urllib.parse.urlparse(resume(plan).headers["location"]).query)
            outcomes[user] = (q, verifier)
        denied, _ = outcomes["bob@example.com"]
        assert denied["error"] == ["access_denied"] and denied["state"] == ["st-bob@example.com"]
        assert denied["error_description"] == ["This device belongs to someone else."]
        passed, verifier = outcomes["Ada@example.com"]
        r = requests.post(API + "/oidc/token", auth=(client["client_id"], client["client_secret"]), timeout=30, data={
            "grant_type": "authorization_code", "code": passed["code"][0], "redirect_uri": CALLBACK, "code_verifier": verifier,
        })
        assert r.status_code == 200, r.text
        claims = verify_id_token(r.json()["id_token"], client["client_id"], "n")
        assert claims["sub"] == "ada@example.com"
        assert claims["preferred_username"] == "Ada@example.com" and claims["email"] == "Ada@example.com"
    finally:
        admin("device", "set-owners", world["serial"])
