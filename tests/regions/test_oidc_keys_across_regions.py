"""The OpenID provider in two local regions (scripts/regions.sh test): its ID token keys are
multi-Region keys made in A and replicated to B, so an ID token issued by either region verifies
with the one JWKS (PyJWT). The flow is tests/oidc's: authorization code with PKCE S256 and a
client secret, the device step by the simulator (`endpoint-agent login`), in each region."""
import json
import secrets

import jwt
import pytest
import requests

from test_regions import A, B, CALLBACK, admin, authorize, code_after_device_step, enrolled_stage, figure, until


pytestmark = pytest.mark.skipif(not (A and B), reason="run through scripts/regions.sh test")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A required stage, a device enrolled in A, and two code clients (RS256, ES256) with a
    client secret: all written in the primary (A) and replicated to B."""
    stage, state = enrolled_stage(tmp_path_factory, "oidc-regions", f"OIDC-R-{secrets.token_hex(3)}")
    clients = {}
    for alg in ("RS256", "ES256"):
        c = json.loads(admin(
            "oidc", "client", "create", "--name", f"regions-{alg}", "--profile", "code", "--stage", stage,
            "--redirect-uri", CALLBACK, "--auth", "client_secret_post", "--alg", alg, "--json",
        ))
        clients[alg] = (c["client_id"], c["client_secret"])
    return {"state": state, "clients": clients}


def id_token_of(world, api, alg):
    """One authorization code flow in region `api`: its ID token, and the nonce it must carry."""
    client_id, secret = world["clients"][alg]
    verifier, state, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    # The client reaches B after the replication lag.
    r, _ = until(f"an authorization in {api}", lambda: (lambda r: r if r.status_code == 303 else None)(
        authorize(api, client_id, verifier, state, nonce)))
    location = r.headers["location"]
    assert location.startswith(api) or location.startswith("/"), location  # the region's own page
    code = code_after_device_step(api, world["state"], r)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
            "client_id": client_id, "client_secret": secret}
    t = requests.post(f"{api}/oidc/token", data=form, timeout=30)
    assert t.status_code == 200, t.text
    return t.json()["id_token"], nonce


def test_an_id_token_of_either_region_verifies_with_the_one_jwks(world):
    # The one JWKS: A's (B publishes the same keys: checked below).
    jwks_uri = requests.get(f"{A}/.well-known/openid-configuration", timeout=30).json()["jwks_uri"]
    keys = requests.get(jwks_uri, timeout=30).json()["keys"]
    b_meta = requests.get(f"{B}/.well-known/openid-configuration", timeout=30).json()
    b_keys = requests.get(b_meta["jwks_uri"], timeout=30).json()["keys"]
    assert sorted(k["kid"] for k in keys) == sorted(k["kid"] for k in b_keys)
    verified = []
    for alg in ("RS256", "ES256"):
        client_id = world["clients"][alg][0]
        for api in (A, B):
            token, nonce = id_token_of(world, api, alg)
            header = jwt.get_unverified_header(token)
            assert header["alg"] == alg
            jwk = next(k for k in keys if k["kid"] == header["kid"])
            issuer = requests.get(f"{api}/.well-known/openid-configuration", timeout=30).json()["issuer"]
            claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[alg], audience=client_id, issuer=issuer,
                                options={"require": ["exp", "iat", "sub"]})
            assert claims["nonce"] == nonce
            verified.append((alg, api, header["kid"]))
    # Each algorithm: one kid in both regions.
    for alg in ("RS256", "ES256"):
        assert len({kid for a, _, kid in verified if a == alg}) == 1, verified
    figure(f"OpenID provider: {len(verified)} ID tokens (RS256, ES256 from A and from B) verified with A's one JWKS")
