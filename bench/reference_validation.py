#!/usr/bin/env python3
"""The reference server's response validation (seed-endpoint-agent-stage: PyJWT unverified
decode with the audience, then for each token of the device a verified HS512 decode with issuer
and audience, then compare_digest of atc with the stored challenge), timed on the inputs that
`validate-bench` wrote. Prints `reference_us_per_op=<float>`."""
import json
import sys
import time
from hmac import compare_digest

import jwt

AUD = "goauthentik.io/platform/endpoint"


def reference_validate(response, devices, challenge):
    raw = jwt.decode(response, options={"verify_signature": False}, audience=AUD)
    tokens = devices.get(raw["iss"])
    if tokens is None:
        raise ValueError("no device")
    for token in tokens:
        try:
            decoded = jwt.decode(response, key=token, algorithms="HS512", issuer=raw["iss"], audience=AUD)
            if not compare_digest(decoded["atc"], challenge):
                raise ValueError("mismatched challenge")
            return raw["iss"]
        except jwt.PyJWTError:
            pass
    raise ValueError("invalid")


def main():
    inputs = json.load(open(sys.argv[1]))
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    devices = {inputs["serial"]: inputs["tokens"]}
    args = (inputs["response"], devices, inputs["challenge"])
    assert reference_validate(*args) == inputs["serial"]
    for _ in range(iterations // 10):
        reference_validate(*args)
    started = time.perf_counter()
    for _ in range(iterations):
        reference_validate(*args)
    us = (time.perf_counter() - started) * 1e6 / iterations
    print(f"reference_us_per_op={us:.3f}")


if __name__ == "__main__":
    main()
