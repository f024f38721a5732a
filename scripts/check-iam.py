#!/usr/bin/env python3
"""Least privilege, checked both ways: compares the AWS accesses each function's code made in
tests/tests/e2e/least_privilege.rs (a JSON map function -> ["dynamodb:GetItem PLAN#*", "kms:Sign",
...]) with that function's IAM statements in template.yaml. A recorded access that no statement
grants, and a granted (action, key prefix) that no recorded access used, are both errors.
Usage: check-iam.py target/least-privilege.json. Exits 1 on any mismatch."""
import fnmatch
import json
import sys
from pathlib import Path

import cfn_yaml

ROOT = Path(__file__).resolve().parent.parent




def grants(function):
    """Every (action, key prefix) a function's statements allow: `dynamodb:GetItem PLAN#*`."""
    out = set()
    for policy in function.get("Properties", {}).get("Policies", []) or []:
        for st in policy.get("Statement", []):
            if st.get("Effect") != "Allow":
                continue
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            keys = (
                st.get("Condition", {})
                .get("ForAllValues:StringLike", {})
                .get("dynamodb:LeadingKeys")
            )
            # A grant on a secondary index (its partition key is `kind`): `... index NAME`.
            resource = st.get("Resource")
            index = ""
            if isinstance(resource, str) and "/index/" in resource:
                index = " index " + resource.split("/index/", 1)[1]
            for action in actions:
                if action.startswith("dynamodb:"):
                    if not keys:
                        out.add(f"{action} (any key){index}")
                    for k in keys or []:
                        out.add(f"{action} {k}{index}")
                else:
                    out.add(action)
    return out


def signing_keys(function):
    """What a function may `kms:Sign` with: "assertion" (only the stack's AssertionKey),
    "signals" (only the stack's SignalsKey), "challenge" (only keys tagged as this stack's
    challenge keys), or "any" (anything else, always an error)."""
    kinds = set()
    for policy in function.get("Properties", {}).get("Policies", []) or []:
        for st in policy.get("Statement", []):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st.get("Effect") != "Allow" or "kms:Sign" not in actions:
                continue
            tags = st.get("Condition", {}).get("StringEquals", {})
            if st.get("Resource") == "AssertionKey.Arn":
                kinds.add("assertion")
            elif st.get("Resource") == "SignalsKey.Arn":
                kinds.add("signals")
            elif st.get("Resource") == ["OidcRsaKey.Arn", "OidcEcKey.Arn"]:
                kinds.add("oidc")
            elif tags.get("aws:ResourceTag/endpoint-stage") == "challenge" and tags.get(
                "aws:ResourceTag/endpoint-stage:stack"
            ):
                kinds.add("challenge")
            else:
                kinds.add("any")
    return kinds


def covers(grant, access):
    """Whether a grant (`dynamodb:GetItem PLAN#*`) allows an access (`dynamodb:GetItem
    PLAN#ia_*`): the same action, the access's key prefix within the grant's pattern."""
    g_action, _, g_key = grant.partition(" ")
    a_action, _, a_key = access.partition(" ")
    if g_action != a_action:
        return False
    if not g_key:
        return not a_key
    g_key, _, g_index = g_key.partition(" index ")
    a_key, _, a_index = a_key.partition(" index ")
    if g_index != a_index:
        return False
    return g_key == "(any key)" or fnmatch.fnmatchcase(a_key, g_key)


def main():
    observed = json.loads(Path(sys.argv[1]).read_text())
    template = cfn_yaml.load(ROOT / "template.yaml")
    functions = {
        name: r
        for name, r in template["Resources"].items()
        if r.get("Type") == "AWS::Serverless::Function"
    }
    errors = []
    # Signing: each function signs with one kind of key at most, never with any key; the
    # response function signs nothing (it asks the challenge function).
    for name, function in sorted(functions.items()):
        kinds = signing_keys(function)
        if "any" in kinds:
            errors.append(f"{name}: may kms:Sign with keys that are neither the assertion key, the signals key nor this stack's challenge keys")
        if len(kinds - {"any"}) > 1:
            errors.append(f"{name}: signs with more than one kind of key: {sorted(kinds)}")
        # Device assertions are signed by the plans function alone; SETs only with the
        # signals key (the internet-facing SSF function and the delivery function could
        # otherwise mint device assertions).
        if "assertion" in kinds and name != "PlansFunction":
            errors.append(f"{name}: may sign device assertions (only PlansFunction may)")
        if name in ("SsfFunction", "DeliverFunction") and kinds != {"signals"}:
            errors.append(f"{name}: must sign with the signals key and no other, not {sorted(kinds)}")
        if "signals" in kinds and name not in ("SsfFunction", "DeliverFunction"):
            errors.append(f"{name}: may sign SETs (only SsfFunction and DeliverFunction may)")
        # ID tokens: the oidc function alone, with its own keys and no other.
        if name == "OidcFunction" and kinds != {"oidc"}:
            errors.append(f"{name}: must sign with the ID token keys and no other, not {sorted(kinds)}")
        if "oidc" in kinds and name != "OidcFunction":
            errors.append(f"{name}: may sign ID tokens (only OidcFunction may)")
        if name == "ResponseFunction" and kinds:
            errors.append(f"{name}: must sign nothing")
    for name, function in sorted(functions.items()):
        granted = grants(function)
        if name not in observed:
            if granted:
                errors.append(f"{name}: grants {sorted(granted)} but the test drove none of its routes")
            continue
        used = set(observed[name])
        # A grant's key is a LeadingKeys pattern (`PLAN#*` also covers `PLAN#ia_*`).
        ungranted = [a for a in sorted(used) if not any(covers(g, a) for g in granted)]
        unused = [g for g in sorted(granted) if not any(covers(g, a) for a in used)]
        for access in ungranted:
            errors.append(f"{name}: calls {access} without a grant in template.yaml")
        for grant in unused:
            errors.append(f"{name}: grants {grant} but no route of it needs it")
        ok = not ungranted and not unused
        print(f"check-iam: {name}: {len(used)} accesses, all granted, every grant used" if ok else f"check-iam: {name}: mismatch")
    for name in sorted(set(observed) - set(functions)):
        errors.append(f"{name}: recorded but not a function of template.yaml")
    for e in errors:
        print(f"check-iam: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
