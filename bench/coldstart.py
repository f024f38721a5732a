#!/usr/bin/env python3
"""Cold start and memory of each function's release bootstrap, measured with a Lambda Runtime
API served on loopback (next, response, error).

For each function, RUNS times: exec the bootstrap with AWS_LAMBDA_RUNTIME_API pointing here;
init = exec -> first `next` request; first invocation = exec -> first response (the event hits
moto through the SDK, like production hits DynamoDB/KMS). Then one process serves LOAD more
events and its peak RSS (VmHWM) is read. Prints a markdown table of medians.

Run inside the local stack (it needs moto and data): `make bench-coldstart`.
"""
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BOOTSTRAP_DIR", os.path.join(ROOT, "target", "bench-build", "release"))
RUNS = int(os.environ.get("RUNS", "20"))
LOAD = int(os.environ.get("LOAD", "200"))
API = os.environ["ENDPOINT_API"]
ADMIN = os.environ["STACK_ADMIN"]


class Runtime:
    """One fake Lambda service: a queue of events, timestamps of the first next/response."""

    def __init__(self):
        self.events = queue.Queue()
        self.responses = queue.Queue()
        self.first_next = None
        self.lock = threading.Lock()
        self.counter = 0

    def reset(self):
        self.events = queue.Queue()
        self.responses = queue.Queue()
        self.first_next = None



class Server(ThreadingHTTPServer):
    """A runtime API for exactly one function process (a fresh one per launch, so a killed
    process's pending long-poll can never take the next process's event)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.rt = Runtime()
        threading.Thread(target=self.serve_forever, daemon=True).start()
        # Let the server thread settle before the clock starts, so that the measurement is the
        # function's start-up, not this harness's.
        time.sleep(0.05)

    @property
    def port(self):
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        RT = self.server.rt
        if self.path.endswith("/runtime/invocation/next"):
            if RT.first_next is None:
                RT.first_next = time.perf_counter()
            event = RT.events.get()
            with RT.lock:
                RT.counter += 1
                rid = f"req-{RT.counter}"
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 15000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def do_POST(self):
        RT = self.server.rt
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        RT.responses.put((time.perf_counter(), self.path, body))


def http_event(method, path, body=None, headers=None):
    h = {"content-type": "application/json", "host": "bench.local"}
    h.update(headers or {})
    e = {
        "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": "", "headers": h,
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.local", "domainPrefix": "bench",
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
                           "requestId": "bench", "routeKey": f"{method} {path}", "stage": "$default", "time": "27/Nov/2026:12:00:00 +0000", "timeEpoch": 0},
        "isBase64Encoded": False,
    }
    if body is not None:
        e["body"] = json.dumps(body)
    return e


def admin(*args):
    return subprocess.run([ADMIN, *args], check=True, capture_output=True, text=True).stdout.strip()


def post(path, body, headers=None):
    req = urllib.request.Request(API + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def setup():
    key = admin("key", "create")
    connector = admin("connector", "create", "--name", "bench", "--challenge-key", key)
    required = admin("stage", "create", "--connector", connector, "--mode", "required")
    optional = admin("stage", "create", "--connector", connector, "--mode", "optional")
    token = admin("device", "enroll", "--connector", connector, "--serial", f"BENCH-{os.getpid()}", "--name", "bench")
    return connector, required, optional, token


def plan(stage):
    return post("/v1/plans", {"stage": stage})["plan"]


def events_for(function, connector, required, optional, token, n):
    if function == "plans":
        return [http_event("POST", "/v1/plans", {"stage": required}) for _ in range(n)]
    if function == "challenge":
        # One plan per invocation would be realistic but slow to prepare; MAX_CHALLENGES_PER_PLAN
        # is raised for the harness so a plan serves up to 100 GETs.
        plans = [plan(required) for _ in range(n // 100 + 1)]
        return [http_event("GET", f"/v1/plans/{plans[i // 100]}/executor") for i in range(n)]
    if function == "response":
        plans = [plan(optional) for _ in range(min(n, 25))]
        return [http_event("POST", f"/v1/plans/{plans[i % len(plans)]}/executor", {"component": "ak-stage-endpoint-agent", "response": None}) for i in range(n)]
    if function == "jwks":
        return [http_event("GET", f"/v1/connectors/{connector}/jwks.json") for _ in range(n)]
    if function == "agent":
        return [http_event("GET", "/api/v3/endpoints/agents/connectors/agent_config/", headers={"authorization": f"Bearer+agent {token}"}) for _ in range(n)]
    return [http_event("GET", "/v1/unknown") for _ in range(n)]


def launch(function, port):
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "MAX_CHALLENGES_PER_PLAN": "100",
        "LOG_LEVEL": "error",
    })
    return subprocess.Popen([os.path.join(BIN, function)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main():
    connector, required, optional, token = setup()
    rows = []
    for function in ["plans", "challenge", "response", "jwks", "agent", "fallback"]:
        evs = events_for(function, connector, required, optional, token, RUNS + LOAD + 1)
        inits, firsts, statuses = [], [], set()
        for i in range(RUNS):
            server = Server()
            RT = server.rt
            RT.events.put(evs[i])
            started = time.perf_counter()
            proc = launch(function, server.port)
            done, path, body = RT.responses.get(timeout=30)
            inits.append((RT.first_next - started) * 1000)
            firsts.append((done - started) * 1000)
            if "/error" in path:
                raise SystemExit(f"{function}: the function reported an error: {body[:200]!r}")
            statuses.add(json.loads(body).get("statusCode"))
            proc.kill()
            proc.wait()
            server.shutdown()
            server.server_close()
        # Memory under load: one process, LOAD more invocations.
        server = Server()
        RT = server.rt
        proc = launch(function, server.port)
        for e in evs[RUNS:RUNS + LOAD]:
            RT.events.put(e)
        warm = []
        last = time.perf_counter()
        for _ in range(LOAD):
            done, path, body = RT.responses.get(timeout=30)
            warm.append((done - last) * 1000)
            last = done
        rss = peak_rss_kib(proc.pid)
        proc.kill()
        proc.wait()
        server.shutdown()
        server.server_close()
        rows.append((function, statistics.median(inits), statistics.median(firsts), statistics.median(warm[1:]), rss / 1024, sorted(statuses)))
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}; runs per function: {RUNS}; load: {LOAD}; {time.strftime('%Y-%m-%d', time.gmtime())}")
    print("| function | init as this Python harness sees it (includes its own overhead; see coldstart-init) | first response median | warm invocation median | peak RSS after load | statuses |")
    print("|---|---|---|---|---|---|")
    for f, i, r, w, m, st in rows:
        print(f"| `{f}` | {i:.2f} ms | {r:.2f} ms | {w:.2f} ms | {m:.1f} MiB | {st} |")


if __name__ == "__main__":
    sys.exit(main())
