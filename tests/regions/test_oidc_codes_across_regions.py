"""Region-affine authorization codes of the OpenID provider (scripts/regions.sh test): a code
names the region that issued it (`use1_<random>`), and only that region's token endpoint redeems
it; another region answers 307 to the home region's `/oidc/token` before it reads anything. So
one code sent to A's and B's token endpoints at once yields one ID token, even after the code has
replicated to B's table. The negative control (region C: B's region and table, affinity off)
redeems the same code twice. The flow is tests/oidc's: code + PKCE S256, the device step by the
simulator (`endpoint-agent login`), ID tokens verified with PyJWT against A's JWKS."""
import concurrent.futures
import json
import secrets
import time

import jwt
import pytest
import requests

from test_regions import A, B, C, CALLBACK, LAG, admin, authorize, code_after_device_step, enrolled_stage, figure


pytestmark = pytest.mark.skipif(not (A and B), reason="run through scripts/regions.sh test")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A required stage, a device enrolled in A, and two code clients (client_secret_post and
    client_secret_basic), written in the primary (A)."""
    stage, state = enrolled_stage(tmp_path_factory, "oidc-codes", f"OIDC-C-{secrets.token_hex(3)}")
    clients = {}
    for auth in ("client_secret_post", "client_secret_basic"):
        c = json.loads(admin(
            "oidc", "client", "create", "--name", f"codes-{auth}", "--profile", "code", "--stage", stage,
            "--redirect-uri", CALLBACK, "--auth", auth, "--json",
        ))
        clients[auth] = (c["client_id"], c["client_secret"])
    jwks = requests.get(f"{A}/oidc/jwks", timeout=30).json()["keys"]
    return {"state": state, "clients": clients, "jwks": jwks}


def code_in_a(world, auth="client_secret_post"):
    """Authorization, the device step and the return in A: the code and its PKCE verifier."""
    client_id, _ = world["clients"][auth]
    verifier = secrets.token_urlsafe(48)
    r = authorize(A, client_id, verifier)
    assert r.status_code == 303, r.text
    code = code_after_device_step(A, world["state"], r)
    assert code.startswith("use1_"), "the code names its home region"
    return code, verifier


def form(world, code, verifier, auth="client_secret_post"):
    client_id, secret = world["clients"][auth]
    f = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
    if auth == "client_secret_post":
        f.update(client_id=client_id, client_secret=secret)
    return f


def redeem(api, data, follow=False, auth=None):
    return requests.post(f"{api}/oidc/token", data=data, auth=auth, timeout=30, allow_redirects=follow)


def verified(world, body, auth="client_secret_post", issuer=A):
    """The ID token's claims, verified with PyJWT against the one JWKS (A's; B and C sign with
    the same multi-Region keys) and the issuer of the region that redeemed the code."""
    token = body["id_token"]
    jwk = next(k for k in world["jwks"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=world["clients"][auth][0],
                      issuer=issuer, options={"require": ["exp", "iat", "sub"]})


def at_once(apis, data):
    with concurrent.futures.ThreadPoolExecutor(len(apis)) as pool:
        return list(pool.map(lambda api: redeem(api, data), apis))


def test_one_code_sent_to_both_regions_at_once_yields_one_token(world):
    code, verifier = code_in_a(world)
    time.sleep(LAG + 0.5)  # the code has reached B's table: B could redeem it, were it not A's
    data = form(world, code, verifier)
    in_a, in_b = at_once([A, B], data)
    assert in_a.status_code == 200, in_a.text
    assert verified(world, in_a.json())["nonce"] == "nn"
    assert in_b.status_code == 307, in_b.text
    assert in_b.headers["location"] == f"{A}/oidc/token"
    assert in_b.json()["error"] == "other_region"
    # B's redirect followed (the body re-sent to A): the code is spent there.
    followed = redeem(B, data, follow=True)
    assert [h.status_code for h in followed.history] == [307]
    assert followed.status_code == 400 and followed.json()["error"] == "invalid_grant", followed.text
    tokens = [r for r in (in_a, in_b, followed) if r.status_code == 200]
    assert len(tokens) == 1
    figure(f"one code to A and B at once (after replication): {len(tokens)} ID token, B answered {in_b.status_code} to A's /oidc/token; following it: {followed.json()['error']}")


def test_a_token_request_that_reaches_b_is_redeemed_at_a_by_following_the_307(world):
    # client_secret_post: Python requests follows the 307 and re-sends the form body.
    code, verifier = code_in_a(world)
    r = redeem(B, form(world, code, verifier), follow=True)
    assert [h.status_code for h in r.history] == [307]
    assert r.status_code == 200 and r.url == f"{A}/oidc/token", r.text
    assert verified(world, r.json())["nonce"] == "nn"
    # client_secret_basic: requests drops Authorization on a redirect to another host or port, so
    # A refuses the client; the code is not spent, and the client re-sends its request to A.
    auth = "client_secret_basic"
    code, verifier = code_in_a(world, auth)
    data = form(world, code, verifier, auth)
    dropped = redeem(B, data, follow=True, auth=world["clients"][auth])
    assert [h.status_code for h in dropped.history] == [307]
    assert dropped.status_code == 401 and dropped.json()["error"] == "invalid_client", dropped.text
    again = redeem(A, data, auth=world["clients"][auth])
    assert again.status_code == 200, again.text
    assert verified(world, again.json(), auth)["nonce"] == "nn"
    figure("a token request at B for A's code: client_secret_post followed the 307 to A and got its ID token; "
           "client_secret_basic lost its Authorization on the redirect (401), the code unspent, and A redeemed it on a re-send")


@pytest.mark.skipif(not C, reason="REGIONS_NEGATIVE_CONTROL=1 starts region B without affinity")
def test_negative_control_without_affinity_one_code_yields_two_tokens(world):
    code, verifier = code_in_a(world)
    time.sleep(LAG + 0.5)  # the code has reached B's table, which C reads
    answers = at_once([A, C], form(world, code, verifier))
    tokens = [r for r in answers if r.status_code == 200]
    # What the test above would catch: two regions each redeemed the one code.
    assert len(tokens) == 2, [(r.status_code, r.text) for r in answers]
    for api, r in zip((A, C), answers):
        assert verified(world, r.json(), issuer=api)["nonce"] == "nn"
    figure(f"negative control (affinity off): one code redeemed {len(tokens)} times (A and C)")
