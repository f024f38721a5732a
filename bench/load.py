#!/usr/bin/env python3
"""A bounded load run through the local stack (loopback only): LOGINS complete logins by
CLIENTS concurrent clients, each login = POST /v1/plans, GET executor, the agent's HS512
response, POST executor, GET jwks.json, GET agent_config/. Asserts zero errors, prints p50/p99
per route, and from the functions' own log lines (latency_ms, aws_ms) the share of handler time
spent in our code vs waiting on the emulator. Run it with `make bench-load`."""
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import jwt

API = os.environ["ENDPOINT_API"]
ADMIN = os.environ["STACK_ADMIN"]
LOG = os.environ["STACK_WATCH_LOG"]
LOGINS = int(os.environ.get("LOGINS", "200"))
CLIENTS = int(os.environ.get("CLIENTS", "4"))
AUD = "goauthentik.io/platform/endpoint"


def admin(*args):
    return subprocess.run([ADMIN, *args], check=True, capture_output=True, text=True).stdout.strip()


def call(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    return status, (json.loads(payload) if payload else None), (time.perf_counter() - started) * 1000


def main():
    key = admin("key", "create")
    connector = admin("connector", "create", "--name", "load", "--challenge-key", key)
    stage = admin("stage", "create", "--connector", connector, "--mode", "required")
    serial = f"LOAD-{os.getpid()}"
    token = admin("device", "enroll", "--connector", connector, "--serial", serial, "--name", "load")
    timings = {}
    errors = []
    lock = threading.Lock()

    def record(route, status, expected, ms, body):
        with lock:
            timings.setdefault(route, []).append(ms)
            if status != expected:
                errors.append((route, status, body))

    def client(n):
        for _ in range(n):
            s, b, ms = call("POST", "/v1/plans", {"stage": stage})
            record("POST /v1/plans", s, 201, ms, b)
            plan = b["plan"]
            s, b, ms = call("GET", f"/v1/plans/{plan}/executor")
            record("GET /v1/plans/{plan}/executor", s, 200, ms, b)
            now = int(time.time())
            response = jwt.encode({"iss": serial, "aud": AUD, "atc": b["challenge"], "iat": now, "exp": now + 300}, token, algorithm="HS512")
            s, b, ms = call("POST", f"/v1/plans/{plan}/executor", {"component": "ak-stage-endpoint-agent", "response": response})
            record("POST /v1/plans/{plan}/executor", s, 200, ms, b)
            if b.get("component") != "xak-flow-redirect":
                errors.append(("login did not pass", s, b))
            s, b, ms = call("GET", f"/v1/connectors/{connector}/jwks.json")
            record("GET /v1/connectors/{connector}/jwks.json", s, 200, ms, b)
            s, b, ms = call("GET", "/api/v3/endpoints/agents/connectors/agent_config/", headers={"authorization": f"Bearer+agent {token}"})
            record("GET agent_config/", s, 200, ms, b)

    # Warm-up: one login per client, unrecorded, so every function instance is started and
    # every client's connection made before the measured run.
    warm = [threading.Thread(target=client, args=(1,)) for _ in range(CLIENTS)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    if errors:
        print("warm-up failed:", errors[:3])
        return 1
    timings.clear()
    time.sleep(0.5)
    log_start = os.path.getsize(LOG)
    per = LOGINS // CLIENTS
    threads = [threading.Thread(target=client, args=(per,)) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    time.sleep(0.5)
    total_ms = aws_ms = 0.0
    with open(LOG) as f:
        f.seek(log_start)
        for line in f:
            if line.startswith("{") and '"message":"request"' in line:
                entry = json.loads(line)
                total_ms += entry.get("latency_ms", 0.0)
                aws_ms += entry.get("aws_ms", 0.0)
    n = sum(len(v) for v in timings.values())
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}; {LOGINS // CLIENTS * CLIENTS} logins by {CLIENTS} clients, {n} requests in {wall:.1f} s ({n / wall:.0f} req/s); {time.strftime('%Y-%m-%d', time.gmtime())}")
    print("| route | requests | p50 | p99 |")
    print("|---|---|---|---|")
    for route, ms in timings.items():
        ms = sorted(ms)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"| `{route}` | {len(ms)} | {statistics.median(ms):.1f} ms | {p99:.1f} ms |")
    if total_ms:
        print(f"handler time: {total_ms:.0f} ms, of which waiting on AWS (moto) {aws_ms:.0f} ms; our code {100 * (total_ms - aws_ms) / total_ms:.1f}%")
    print(f"errors: {len(errors)}")
    for e in errors[:5]:
        print("  ", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
