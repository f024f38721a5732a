#!/usr/bin/env python3
"""`make bench-signing`: the two challenge signing modes (issue 31.4) in one run of the local
stack (CHALLENGE_SIGNING=data-key, so the challenge function may unwrap data keys; moto with
MOTO_COUNT_SIGNS=1, which logs every KMS Sign and Decrypt with its key).

Two connectors with a required stage each: one signing with a P-256 KMS key (`kms` mode: one
KMS Sign per challenge), one with a challenge data key (`data-key` mode: one Decrypt per
instance, then local signing). CHALLENGES executor GETs per mode (default 1,000), one plan each,
interleaved (kms, data-key, kms, ...) so that both meet the same emulator and machine. Prints
per mode: KMS calls per 1,000 challenges (counted in moto's log, by key) and p50/p90/p99 of the
executor GET (client-side, loopback, warm: each mode's first GET is left out of the latency,
not out of the count). Every challenge is checked: 200, signed with the connector's kid, and
verified with PyJWT against the connector's JWKS.
"""
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import jwt

API = os.environ["ENDPOINT_API"]
ADMIN = os.environ["STACK_ADMIN"]
CHALLENGES = int(os.environ.get("CHALLENGES", "1000"))


def admin(*args):
    out = subprocess.run([ADMIN, *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data, method=method, headers={"content-type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    return status, (json.loads(payload) if payload else None), (time.perf_counter() - started) * 1000


def moto_log():
    port = os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1].strip("/")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "target", "moto", f"moto-{port}.log")


def kms_calls(since, until, key):
    """(Sign, Decrypt) calls moto logged between two times for the key whose id contains `key`."""
    counts = {"kms-sign": 0, "kms-decrypt": 0}
    with open(moto_log()) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] in counts and since <= float(parts[1]) <= until and key in parts[2]:
                counts[parts[0]] += 1
    return counts["kms-sign"], counts["kms-decrypt"]


def mode(name, key):
    connector = admin("connector", "create", "--name", f"bench-{name}", "--challenge-key", key)["id"]
    stage = admin("stage", "create", "--connector", connector, "--mode", "required")["id"]
    status, jwks, _ = call("GET", f"/v1/connectors/{connector}/jwks.json")
    assert status == 200, jwks
    [jwk] = jwks["keys"]
    return {"name": name, "stage": stage, "jwk": jwk, "public": jwt.PyJWK(jwk), "ms": [], "errors": []}


def challenge(m):
    status, body, _ = call("POST", "/v1/plans", {"stage": m["stage"]})
    if status != 201:
        m["errors"].append(("POST /v1/plans", status, body))
        return
    status, body, ms = call("GET", f"/v1/plans/{body['plan']}/executor")
    m["ms"].append(ms)
    if status != 200 or "challenge" not in (body or {}):
        m["errors"].append(("GET executor", status, body))
        return
    token = body["challenge"]
    if jwt.get_unverified_header(token).get("kid") != m["jwk"]["kid"]:
        m["errors"].append(("kid", token))
    jwt.decode(token, m["public"].key, algorithms=["ES256"], options={"verify_aud": False})


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    if os.environ.get("CHALLENGE_SIGNING") != "data-key" or os.environ.get("MOTO_COUNT_SIGNS") != "1":
        sys.exit("run through `make bench-signing` (CHALLENGE_SIGNING=data-key MOTO_COUNT_SIGNS=1)")
    kms_key = admin("key", "create")["key_id"]
    data_key = admin("key", "create-data-key")
    wrapping = os.environ["CHALLENGE_WRAPPING_KEY_ID"]
    modes = [mode("kms", kms_key), mode("data-key", data_key["key_id"])]
    since = time.time()
    for _ in range(CHALLENGES):
        for m in modes:
            challenge(m)
    until = time.time() + 1
    # moto writes its log as it answers; let the last lines land.
    time.sleep(0.5)
    print(f"signing modes, {CHALLENGES} challenges each, interleaved, one run (debug stack unless STACK_RELEASE=1)")
    print(f"{'mode':<9} {'KMS Sign':>9} {'Decrypt':>8} {'per 1,000':>10} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'errors':>6}")
    failed = False
    for m, key in zip(modes, (kms_key, wrapping)):
        signs, decrypts = kms_calls(since, until, key)
        per_thousand = (signs + decrypts) * 1000 / CHALLENGES
        warm = m["ms"][1:]
        print(
            f"{m['name']:<9} {signs:>9} {decrypts:>8} {per_thousand:>10.1f} "
            f"{statistics.median(warm):>7.1f} {percentile(warm, 90):>7.1f} {percentile(warm, 99):>7.1f} {len(m['errors']):>6}"
        )
        failed |= bool(m["errors"])
        for e in m["errors"][:5]:
            print("  error:", e)
    kms_m, dk = modes
    signs, _ = kms_calls(since, until, kms_key)
    _, decrypts = kms_calls(since, until, wrapping)
    # What the modes promise: one Sign per kms challenge; at most one Decrypt per challenge
    # function instance in data-key mode (the local stack runs one instance).
    if signs != CHALLENGES or decrypts > 1:
        print(f"unexpected KMS calls: {signs} Sign for {CHALLENGES} kms challenges, {decrypts} Decrypt", file=sys.stderr)
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
