#!/usr/bin/env python3
"""A relying party's login page with endpoint-stage, in the Python standard library.

The login button creates a plan (POST /v1/plans, signed with SigV4 as the deployed route
requires IAM auth), keeps the plan id in the user's session, and sends the browser to the
plan's hosted stage page. When the stage sends the browser back to /done, the app reads the
plan server-side (GET /v1/plans/{plan}, signed), never trusting the redirect itself, and
verifies the plan's device assertion with a standard JWT library (PyJWT) against the stack's
published keys (/.well-known/jwks.json): its signature, issuer, audience (this app), expiry and
the nonce this session sent. Then it shows which device passed.

    python examples/relying-party/app.py --api http://127.0.0.1:9000 --stage STAGE_ID

The app asks for its own URL as the assertion's audience: register it on the stage first
(endpoint-admin stage set-audiences STAGE_ID http://127.0.0.1:8000), or plans are refused (400).

Against a deployment: --api https://<ApiUrl> with AWS credentials allowed by the stack's
relying-party policy (standard AWS environment variables or profile). Locally the routes take
no SigV4, and the app still signs (with the stack's test credentials).
"""

import argparse
import html
import json
import time
import os
import secrets
import sys
import threading
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import Session

COOKIE = "rp_session"


class EndpointStage:
    """The two relying-party calls, signed with SigV4 for the `execute-api` service."""

    def __init__(self, api, region):
        self.api = api.rstrip("/")
        self.region = region
        credentials = Session().get_credentials()
        if credentials is None:
            sys.exit("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")
        self.credentials = credentials

    def call(self, method, path, body=None):
        url = self.api + path
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else {}
        signed = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(signed)
        request = urllib.request.Request(url, data=data, method=method, headers=dict(signed.headers.items()))
        try:
            with urllib.request.urlopen(request, timeout=15) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"null")
            except ValueError:
                return e.code, None

    def create_plan(self, stage, redirect, nonce, audience):
        body = {"stage": stage, "redirect": redirect, "nonce": nonce, "audience": audience}
        return self.call("POST", "/v1/plans", body)

    def read_plan(self, plan):
        return self.call("GET", f"/v1/plans/{plan}")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:10vh auto;padding:1rem;line-height:1.5}}
button{{font:inherit;padding:.6rem 1.2rem}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""


def page(title, body):
    return PAGE.format(title=html.escape(title), body=body).encode()


class App:
    """The app's state: its stage, its sessions, and the stack's published assertion keys."""

    def __init__(self, stage_api, stage, public_url, issuer):
        self.stage_api = stage_api
        self.stage = stage
        self.public_url = public_url.rstrip("/")
        self.issuer = issuer.rstrip("/")
        # PyJWT fetches the published keys (and fetches again for a kid it does not know).
        self.keys = jwt.PyJWKClient(f"{stage_api.api}/.well-known/jwks.json", cache_keys=True)
        self.sessions = {}
        self.lock = threading.Lock()

    def verify(self, assertion, nonce):
        """The claims of a device assertion, if it verifies: ES256 by a published key, of
        type device-assertion+jwt, from the stack (iss), for this app (aud), unexpired, and
        carrying this session's nonce (so it is this sign-in's, not a replayed one)."""
        if not assertion:
            raise ValueError("the plan has no device assertion")
        if jwt.get_unverified_header(assertion).get("typ") != "device-assertion+jwt":
            raise ValueError("not a device assertion")
        key = self.keys.get_signing_key_from_jwt(assertion)
        claims = jwt.decode(
            assertion,
            key.key,
            algorithms=["ES256"],
            audience=self.public_url,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        if not secrets.compare_digest(claims.get("nonce", ""), nonce):
            raise ValueError("the assertion of another sign-in")
        if claims["exp"] - claims["iat"] > 300 or claims["iat"] > time.time() + 30:
            raise ValueError("an assertion that lives too long or comes from the future")
        return claims


def handler_for(app):
    class Handler(BaseHTTPRequestHandler):
        def session(self):
            for part in self.headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE:
                    with app.lock:
                        if value in app.sessions:
                            return value, app.sessions[value]
            return None, None

        def send(self, status, body, headers=()):
            self.send_response(status)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("cache-control", "no-store")
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/":
                self.send(200, page("Example app", '<p>Sign in to the example app. The login checks that this browser runs on an enrolled device.</p><form method="post" action="/login"><button type="submit">Sign in with this device</button></form>'))
            elif path == "/done":
                self.done()
            else:
                self.send(404, page("Not found", "<p>No such page.</p>"))

        def do_POST(self):
            if self.path != "/login":
                self.send(404, page("Not found", "<p>No such page.</p>"))
                return
            # A nonce of this session: the device assertion must carry it back.
            nonce = secrets.token_urlsafe(24)
            status, created = app.stage_api.create_plan(app.stage, f"{app.public_url}/done", nonce, app.public_url)
            if status != 201:
                message = (created or {}).get("message", f"status {status}")
                self.send(502, page("Sign-in unavailable", f"<p>The device check could not start: {html.escape(message)}</p>"))
                return
            sid = secrets.token_urlsafe(32)
            with app.lock:
                app.sessions[sid] = {"plan": created["plan"], "nonce": nonce}
            # The session binds the plan to this browser: /done reads the plan of this session only.
            self.send(303, b"", [("location", created["page"]), ("set-cookie", f"{COOKIE}={sid}; HttpOnly; SameSite=Lax; Path=/")])

        def done(self):
            sid, session = self.session()
            if session is None:
                self.send(400, page("Sign-in expired", '<p>No sign-in in progress. <a href="/">Start again</a>.</p>'))
                return
            status, plan = app.stage_api.read_plan(session["plan"])
            if status != 200:
                self.send(403, page("Sign-in failed", '<p>The device check has expired. <a href="/">Start again</a>.</p>'))
                return
            if plan["status"] != "passed":
                # "Back to sign-in" on the stage page adds why (device_check=no_response, ...): a
                # hint for what to say, never a decision (the plan read above is the authority).
                check = parse_qs(urlsplit(self.path).query).get("device_check", [""])[0][:40]
                hint = f' <span data-device-check="{html.escape(check)}">(device check: {html.escape(check)})</span>' if check else ""
                self.send(403, page("Sign-in failed", f'<p data-result="{html.escape(plan["status"])}">The device check did not pass ({html.escape(plan["status"])}).{hint} <a href="/">Start again</a>.</p>'))
                return
            if plan.get("device") is None:
                text = '<span data-device="">Signed in without an enrolled device (the stage is optional).</span>'
                self.send(200, page("Signed in", f'<p data-result="passed">{text}</p>'))
                return
            try:
                claims = app.verify(plan.get("assertion"), session["nonce"])
            except (jwt.PyJWTError, ValueError) as e:
                self.send(403, page("Sign-in failed", f'<p data-result="unverified">The device assertion did not verify ({html.escape(type(e).__name__)}). <a href="/">Start again</a>.</p>'))
                return
            serial, name = html.escape(claims["serial"]), html.escape(claims["name"])
            text = f'Signed in from the enrolled device <strong data-device="{serial}">{name}</strong> (serial {serial}, verified assertion for device <code data-sub>{html.escape(claims["sub"])}</code>).'
            self.send(200, page("Signed in", f'<p data-result="passed">{text}</p>'))

        def log_message(self, fmt, *args):
            # Never log paths or cookies: they carry plan ids and session ids.
            pass

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--api", default=os.environ.get("ENDPOINT_API", "http://127.0.0.1:9000"), help="endpoint-stage's base URL (ENDPOINT_API)")
    p.add_argument("--stage", default=os.environ.get("STAGE_ID"), help="the stage id (STAGE_ID)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--public-url", help="where browsers reach this app (default http://127.0.0.1:PORT)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")))
    p.add_argument("--issuer", help="the device assertions' issuer: the stack's public base URL (default --api)")
    args = p.parse_args()
    if not args.stage:
        p.error("--stage (or STAGE_ID) is required")
    public_url = args.public_url or f"http://127.0.0.1:{args.port}"
    app = App(EndpointStage(args.api, args.region), args.stage, public_url, args.issuer or args.api)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(app))
    print(f"relying-party example on {public_url} (stage {args.stage}, API {args.api})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
