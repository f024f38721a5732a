#!/usr/bin/env python3
"""The descriptions of the routes must agree. The route table the functions match by
(shared/src/edge/routes.rs) is the source: template.yaml's HTTP events and throttling budgets and
the `cargo lambda watch` router in Cargo.toml are generated from it (`make routes`), and a test
of the core (`edge::route_artefacts`) fails when they differ from it. This script checks what is
written by hand against what the template deploys: openapi.yaml (the contract's schema) names
exactly the template's routes, the local router runs the function the template runs for each, both
have their fallback, and every route has its throttling budget. Also validates openapi.yaml
against the OpenAPI 3.0 schema. Exits 1 on any mismatch."""
import re
import sys
import tomllib

import yaml
from openapi_spec_validator import validate

import cfn_yaml




def norm(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


def main():
    errors = []
    spec = yaml.safe_load(open("openapi.yaml"))
    validate(spec)
    openapi = {(m.upper(), norm(p)) for p, ops in spec["paths"].items() for m in ops if m in ("get", "post", "put", "delete", "patch")}

    template = cfn_yaml.load("template.yaml")
    deployed = {}
    for res in template["Resources"].values():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        binary = res["Metadata"]["BuildProperties"]["Binary"]
        for ev in res["Properties"].get("Events", {}).values():
            if ev["Type"] == "HttpApi" and ev["Properties"]["Path"] != "$default":
                deployed[(ev["Properties"]["Method"].upper(), norm(ev["Properties"]["Path"]))] = binary

    router = tomllib.load(open("Cargo.toml", "rb"))["workspace"]["metadata"]["lambda"]["watch"]["router"]
    local = {}
    for path, target in router.items():
        if isinstance(target, str):
            for method, _ in openapi:
                local.setdefault((method, norm(path)), target)
        else:
            for route in target:
                local[(route["method"].upper(), norm(path))] = route["function"]

    if openapi != set(deployed):
        errors.append(f"openapi.yaml and template.yaml differ: only in openapi {sorted(openapi - set(deployed))}, only in template {sorted(set(deployed) - openapi)}")
    for route, binary in sorted(deployed.items()):
        if local.get(route) != binary:
            errors.append(f"{route}: template.yaml runs {binary}, the local router runs {local.get(route)}")
    if "/{*rest}" not in router or not any(ev for res in template["Resources"].values() if res.get("Type") == "AWS::Serverless::Function" for ev in res["Properties"].get("Events", {}).values() if ev["Properties"].get("Path") == "$default"):
        errors.append("both the template ($default) and the router (/{*rest}) need a fallback route")
    # Every route has its own throttling budget, and every budget names a route.
    api = next(r for r in template["Resources"].values() if r.get("Type") == "AWS::Serverless::HttpApi")
    budgets = {}
    for key in api["Properties"].get("RouteSettings", {}):
        method, _, path = key.partition(" ")
        budgets[(method, norm(path))] = key
    if set(budgets) != set(deployed):
        errors.append(f"template.yaml RouteSettings and routes differ: without a budget {sorted(set(deployed) - set(budgets))}, budgets of no route {sorted(set(budgets) - set(deployed))}")
    for e in errors:
        print(f"check-api: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check-api: {len(openapi)} routes agree across openapi.yaml, template.yaml (each with its throttling budget) and the local router (both generated from routes.rs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
