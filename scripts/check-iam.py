#!/usr/bin/env python3
"""Least privilege, checked both ways: compares the AWS accesses each function's code made in
tests/tests/e2e/least_privilege.rs (a JSON map function -> ["dynamodb:GetItem PLAN#*", "kms:Sign",
...]) with that function's IAM statements in template.yaml. A recorded access that no statement
grants, and a granted (action, key prefix) that no recorded access used, are both errors.
Usage: check-iam.py target/least-privilege.json [--mode kms|data-key]: the template's statements
as deployed with ChallengeSigning=MODE (default kms; `!If [DataKeySigning, ...]` resolved).
Also, in every mode: no function may kms:Decrypt with the challenge data-key encryption context
but the challenge function (the only grant on ChallengeWrappingKey, and only with that context),
and the wrapping key's own policy refuses any other context. Exits 1 on any mismatch."""
import fnmatch
import json
import sys
from pathlib import Path

import cfn_yaml

ROOT = Path(__file__).resolve().parent.parent
DATA_KEY_PURPOSE = "endpoint-stage challenge signing key"


class IamLoader(cfn_yaml.CfnLoader):
    """cfn_yaml's loader, keeping `!If` (the statements of ChallengeSigning=data-key)."""


IamLoader.add_constructor(
    "!If", lambda loader, node: {"Fn::If": loader.construct_sequence(node, deep=True)}
)


def resolve(value, conditions):
    """`value` with each `!If` replaced by its branch and `!Ref AWS::NoValue` dropped."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return resolve(yes if conditions.get(name, False) else no, conditions)
        out = {k: resolve(v, conditions) for k, v in value.items()}
        return {k: v for k, v in out.items() if v != "AWS::NoValue"}
    if isinstance(value, list):
        return [r for r in (resolve(v, conditions) for v in value) if r != "AWS::NoValue"]
    return value


def decrypt_errors(name, function):
    """Who may unwrap challenge data keys: the challenge function alone, with their context."""
    errors = []
    for policy in function.get("Properties", {}).get("Policies", []) or []:
        for st in policy.get("Statement", []):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st.get("Effect") != "Allow" or not any(
                a in ("kms:Decrypt", "kms:*", "*") for a in actions
            ):
                continue
            resource = st.get("Resource")
            context = st.get("Condition", {}).get("StringEquals", {})
            if resource == "SealingKey.Arn":
                if context.get("kms:EncryptionContext:purpose", "") == DATA_KEY_PURPOSE:
                    errors.append(f"{name}: may Decrypt with the challenge data-key context")
            elif resource == "ChallengeWrappingKey.Arn":
                if name != "ChallengeFunction":
                    errors.append(f"{name}: may unwrap challenge data keys (only ChallengeFunction may)")
                if context.get("kms:EncryptionContext:purpose") != DATA_KEY_PURPOSE or not context.get(
                    "kms:EncryptionContext:table"
                ):
                    errors.append(f"{name}: unwraps challenge data keys without their encryption context")
            else:
                errors.append(f"{name}: may kms:Decrypt with keys other than SealingKey and ChallengeWrappingKey ({resource})")
    return errors


def wrapping_key_errors(template):
    """The wrapping key's policy refuses every use without the data-key context."""
    key = template["Resources"].get("ChallengeWrappingKey")
    if key is None:
        return ["ChallengeWrappingKey: missing"]
    for st in key["Properties"]["KeyPolicy"]["Statement"]:
        denied = st.get("Condition", {}).get("StringNotEquals", {})
        if (
            st.get("Effect") == "Deny"
            and "kms:Decrypt" in st.get("Action", [])
            and denied.get("kms:EncryptionContext:purpose") == DATA_KEY_PURPOSE
        ):
            return []
    return ["ChallengeWrappingKey: its policy does not refuse other encryption contexts"]




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
    mode = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "kms"
    if mode not in ("kms", "data-key"):
        print(f"check-iam: unknown mode {mode}", file=sys.stderr)
        return 2
    with open(ROOT / "template.yaml") as f:
        template = __import__("yaml").load(f, Loader=IamLoader)
    # As one region deploys it: its own table and keys (check-modes.py checks the other modes).
    conditions = {"DataKeySigning": mode == "data-key", "CreateTable": True, "ReplicaKeys": False}
    functions = {
        name: resolve(r, conditions)
        for name, r in template["Resources"].items()
        if r.get("Type") == "AWS::Serverless::Function"
    }
    print(f"check-iam: ChallengeSigning={mode}")
    errors = wrapping_key_errors(template)
    for name, function in sorted(functions.items()):
        errors.extend(decrypt_errors(name, function))
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
