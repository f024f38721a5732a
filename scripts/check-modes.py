#!/usr/bin/env python3
"""template.yaml in each of its modes, as CloudFormation would deploy it: the SAM template is
translated (samtranslator, what `sam deploy` does) with each mode's parameter values, the
translated template is linted with those values (cfn-lint --parameters: cfn-lint ignores
parameter values on a template that still has its SAM transform), and the mode's promises are
checked on the resources its conditions keep:

- none: no CloudFront, the execute-api endpoint on, no origin secret in any function;
- cloudfront: the execute-api endpoint disabled, the API on its custom domain and CloudFront's
  origin that domain's regional target, CloudFront-Viewer-Address forwarded, both origin
  secrets in every function;
- data-key (ChallengeSigning=data-key, issue 31.4): the wrapping key of challenge data keys
  exists, and the challenge function, told its mode, may unwrap with it; in the other modes
  (ChallengeSigning=kms) neither;
- global-table (ExistingTableName, deploy/global.yaml): no AWS::DynamoDB::Table resource, every
  function's TABLE_NAME the global table's name, and every DynamoDB statement scoped to that table
  (or its kind index) in this region; the other modes create the table and scope to it;
- multi-region keys (StackKeys=multi-region): each of the stack's KMS keys is a multi-Region
  primary; single-region (the default) leaves MultiRegion unset on all but the wrapping key (an
  update never replaces an existing stack's keys);
- replica keys (StackKeys=replica, with data-key and the global table): no AWS::KMS::Key at all,
  an AWS::KMS::ReplicaKey of each primary named by its parameter, with the original's key policy
  (its encryption-context conditions) and tags; every KMS statement, alias and key variable of
  the functions names the replicas;
- all: the functions that serve no login (agent, ssf, deliver, jwks) have reserved
  concurrency, the login functions none.

With `--sources`, first the templates themselves, as `make lint` checks them with the tools'
own commands: `cfn-lint template.yaml deploy/*.yaml` (.cfnlintrc's rules and ignores) and
`sam validate --lint --region us-east-1` (which is cfn-lint's `lint` of template.yaml with that
region and cfn-lint's own rules, none ignored: samcli/commands/validate/validate.py, `_lint`).
Every lint runs in this one process through cfn-lint's API: each `cfn-lint` or `sam` process
spent 5 to 8 s of CPU starting (its schemas and rules) before it read a template. template.yaml
is linted once for both tools: .cfnlintrc adds the serverless rules and ignores only some of
them (checked here), so every rule `sam validate --lint` runs also runs in that lint, unignored,
and a clean lint is clean for both (otherwise template.yaml is linted twice, as each tool sees it).

`--lint-modes edge` (make test) lints the translated template in the two edge modes only (`none`
and `cloudfront`; each lint is about 5 s of CPU) and checks every mode's promises; without it
(make lint, make test-long) every mode is linted too.

Exits 1 on any failure. Run by `make test` (scripts/test.sh, template_checks, with
`--sources --lint-modes edge`), `make lint` (after the tools' own commands) and `make test-long`."""
import json
import os
import sys

# The translation names the region in ARNs; no AWS call is made.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import yaml
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

SOURCES = ["template.yaml", "deploy/edge-waf.yaml", "deploy/global.yaml"]

MODES = {
    "none": {},
    "cloudfront": {
        "EdgeProtection": "cloudfront",
        "EdgeWebAclArn": "arn:aws:wafv2:us-east-1:111122223333:global/webacl/edge/0123",
        "EdgeOriginSecret": "0123456789abcdef0123456789abcdef",
        "EdgeOriginSecretPrevious": "fedcba9876543210fedcba9876543210",
        "DomainName": "device.example.com",
        "CertificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/0123",
    },
    "data-key": {"ChallengeSigning": "data-key"},
    "global-table": {"ExistingTableName": "endpoint-stage-global"},
    "multi-region-keys": {"StackKeys": "multi-region", "ChallengeSigning": "data-key"},
    "replica-keys": {
        "StackKeys": "replica",
        "ChallengeSigning": "data-key",
        "ExistingTableName": "endpoint-stage-global",
        **{
            f"Primary{k}Arn": f"arn:aws:kms:us-east-1:111122223333:key/mrk-{i:032x}"
            for i, k in enumerate(
                [
                    "ChallengeKey",
                    "AssertionKey",
                    "SignalsKey",
                    "OidcRsaKey",
                    "OidcEcKey",
                    "SealingKey",
                    "ChallengeWrappingKey",
                ],
                1,
            )
        },
    },
}
KEYS = ["ChallengeKey", "AssertionKey", "SignalsKey", "OidcRsaKey", "OidcEcKey", "SealingKey", "ChallengeWrappingKey"]
LOGINLESS = {"AgentFunction", "SsfFunction", "DeliverFunction", "JwksFunction"}
# The modes `--lint-modes edge` lints (make test): both EdgeProtection values.
EDGE_MODES = {"none", "cloudfront"}


class Loader:
    """No managed policies to look up: every policy of the template is inline."""

    def load(self):
        return {}


def resolve(value, params, conditions):
    """The value of a (condition) expression under the given parameter values."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return params.get(arg, {"Ref": arg})
        if fn == "Condition":
            return conditions[arg]
        if fn == "Fn::Equals":
            a, b = (resolve(x, params, conditions) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not resolve(arg[0], params, conditions)
        if fn == "Fn::And":
            return all(resolve(x, params, conditions) for x in arg)
        if fn == "Fn::Or":
            return any(resolve(x, params, conditions) for x in arg)
        if fn == "Fn::If":
            name, yes, no = arg
            return resolve(yes if conditions[name] else no, params, conditions)
    if isinstance(value, dict):
        return {k: resolve(v, params, conditions) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, params, conditions) for v in value]
    return value


def conditions_of(template, params):
    out = {}
    pending = dict(template.get("Conditions", {}))
    while pending:
        for name, expr in list(pending.items()):
            try:
                out[name] = bool(resolve(expr, params, out))
                del pending[name]
            except KeyError:
                continue
    return out


def walk(value):
    """Every dict and list inside `value`, itself included."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def function_statements(kept):
    """(role, statement) of every Allow statement of the functions' roles."""
    for name, r in kept.items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for policy in r["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                if isinstance(st, dict) and st.get("Effect") == "Allow":
                    yield name, st


def table_errors(kept, params):
    """The table: created, or the global table's replica named by ExistingTableName, and every
    DynamoDB grant and TABLE_NAME scoped to it."""
    errors = []
    existing = params.get("ExistingTableName", "")
    tables = [n for n, r in kept.items() if r["Type"] == "AWS::DynamoDB::Table"]
    if existing:
        if tables:
            errors.append(f"ExistingTableName set, yet the stack creates {tables}")
        arn = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ExistingTableName}"
        allowed = [{"Fn::Sub": arn}, {"Fn::Sub": arn + "/index/kind-index"}]
        name = existing
    else:
        if tables != ["Table"]:
            errors.append(f"the stack creates its table, not {tables}")
        allowed = [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::Sub": "${Table.Arn}/index/kind-index"}]
        name = {"Ref": "Table"}
    seen = 0
    for role, st in function_statements(kept):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if any(a.startswith("dynamodb:") for a in actions):
            seen += 1
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            for res in resources:
                if res not in allowed:
                    errors.append(f"{role}: a DynamoDB grant on {res}, not the stack's table")
    if not seen:
        errors.append("no DynamoDB grant found")
    for n, r in kept.items():
        if r["Type"] == "AWS::Lambda::Function":
            env = r["Properties"].get("Environment", {}).get("Variables", {})
            if env.get("TABLE_NAME") != name:
                errors.append(f"{n}: TABLE_NAME is {env.get('TABLE_NAME')}, not {name}")
    return errors


def key_errors(kept, params, source, cond):
    """The stack's keys: single-region, multi-Region primaries, or replicas of the primary's,
    with the originals' policies and tags; the functions name the keys of their mode."""
    errors = []
    mode = params.get("StackKeys", "single-region")
    data_key = params.get("ChallengeSigning") == "data-key"
    expected = [k for k in KEYS if data_key or k != "ChallengeWrappingKey"]
    keys = {n: r for n, r in kept.items() if r["Type"] == "AWS::KMS::Key"}
    replicas = {n: r for n, r in kept.items() if r["Type"] == "AWS::KMS::ReplicaKey"}
    if mode == "replica":
        if keys:
            errors.append(f"StackKeys=replica, yet the stack creates keys {sorted(keys)}")
        for k in expected:
            rep = replicas.get(f"{k}Replica")
            if rep is None:
                errors.append(f"no replica of {k}")
                continue
            props = rep["Properties"]
            if props.get("PrimaryKeyArn") != params[f"Primary{k}Arn"]:
                errors.append(f"{k}Replica: PrimaryKeyArn is not Primary{k}Arn")
            original = resolve(source["Resources"][k]["Properties"], params, cond)
            if props.get("KeyPolicy") != original["KeyPolicy"]:
                errors.append(f"{k}Replica: its key policy differs from {k}'s")
            if props.get("Tags") != original.get("Tags"):
                errors.append(f"{k}Replica: its tags differ from {k}'s")
        names = {f"{k}" for k in KEYS}
        for n, r in kept.items():
            if r["Type"] in ("AWS::IAM::Role", "AWS::Lambda::Function", "AWS::KMS::Alias"):
                for v in walk(r):
                    if isinstance(v, dict) and "Fn::GetAtt" in v and v["Fn::GetAtt"][0] in names:
                        errors.append(f"{n}: names {v['Fn::GetAtt'][0]}, not its replica")
                    if isinstance(v, dict) and v.get("Ref") in names:
                        errors.append(f"{n}: names {v['Ref']}, not its replica")
    else:
        if replicas:
            errors.append(f"replicas {sorted(replicas)} outside StackKeys=replica")
        for k in expected:
            if k not in keys:
                errors.append(f"{k} is not created")
                continue
            multi = keys[k]["Properties"].get("MultiRegion") is True
            want = mode == "multi-region" or k == "ChallengeWrappingKey"
            if multi != want:
                errors.append(f"{k}: MultiRegion {multi}, expected {want}")
            if not want and "MultiRegion" in keys[k]["Properties"] and keys[k]["Properties"]["MultiRegion"] != {"Ref": "AWS::NoValue"}:
                errors.append(f"{k}: MultiRegion set (an existing stack's key would be replaced)")
    return errors


def global_table_errors(source):
    """deploy/global.yaml's table has template.yaml's schema: keys, attributes, the kind index
    and the TTL attribute (a region's stack uses it through ExistingTableName), and the stream
    global tables need."""
    errors = []
    glob, matches = decode("deploy/global.yaml")
    if matches:
        return [f"deploy/global.yaml does not parse: {matches}"]
    table = source["Resources"]["Table"]["Properties"]
    replica = glob["Resources"]["GlobalTable"]["Properties"]
    for field in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "TimeToLiveSpecification", "BillingMode"):
        if json.loads(json.dumps(table[field])) != json.loads(json.dumps(replica[field])):
            errors.append(f"global-table: deploy/global.yaml's {field} differs from template.yaml's")
    if replica.get("StreamSpecification", {}).get("StreamViewType") != "NEW_AND_OLD_IMAGES":
        errors.append("global-table: deploy/global.yaml's table has no NEW_AND_OLD_IMAGES stream")
    return errors


def lint_errors(what, text, **config):
    """cfn-lint's findings on one template (empty: clean), with the given configuration."""
    matches = lint(text, config=ManualArgs(regions=["us-east-1"], **config))
    return [f"{what}:\n" + "\n".join(str(m) for m in matches)] if matches else []


def source_errors():
    """The templates as `cfn-lint SOURCES` (with .cfnlintrc) and `sam validate --lint` see them."""
    with open(".cfnlintrc") as f:
        rc = yaml.safe_load(f)
    rc_config = {"append_rules": rc.get("append_rules", []), "ignore_checks": rc.get("ignore_checks", [])}
    errors = []
    for path in SOURCES:
        with open(path) as f:
            errors += lint_errors(f"cfn-lint {path}", f.read(), **rc_config)
    # `sam validate --lint` runs cfn-lint's own rules with no ignores. When .cfnlintrc ignores
    # only rules it appends (the serverless ones, WS...), the lint above ran every one of them
    # unignored: clean there is clean for sam. Otherwise lint it as sam does.
    if not all(check.startswith("WS") for check in rc_config["ignore_checks"]):
        with open("template.yaml") as f:
            errors += lint_errors("sam validate --lint (cfn-lint's lint, us-east-1)", f.read())
    return errors


def option(name):
    """The value after `name` on the command line (None when absent)."""
    args = sys.argv[1:]
    return args[args.index(name) + 1] if name in args[:-1] else None


def main():
    errors = source_errors() if "--sources" in sys.argv[1:] else []
    source, matches = decode("template.yaml")
    if matches:
        sys.exit(f"check-modes: template.yaml does not parse: {matches}")
    os.makedirs("target/setup", exist_ok=True)
    # As `sam package` leaves it: the code uploaded (no upload here; the path is a stand-in).
    source["Globals"]["Function"]["CodeUri"] = "s3://endpoint-stage-build/functions.zip"
    lint_modes = EDGE_MODES if option("--lint-modes") == "edge" else set(MODES)
    for mode, given in MODES.items():
        defaults = {k: v.get("Default", "") for k, v in source["Parameters"].items()}
        params = {**defaults, **given, "AWS::Region": "us-east-1", "AWS::StackName": "es"}
        translated = transform(json.loads(json.dumps(source)), params, Loader())
        path = f"target/setup/template-{mode}.json"
        with open(path, "w") as f:
            json.dump(translated, f, indent=1, default=str)
        # .cfnlintrc's own ignores (WS1000, WS1004: it says why), and W2001: the translation
        # has used AllowedOrigins (the API's CORS), unused in its output.
        if mode in lint_modes:
            errors += lint_errors(
                f"{mode}: cfn-lint {path}",
                json.dumps(translated, default=str),
                ignore_checks=["W2001", "WS1000", "WS1004"],
                parameters=[given] if given else [],
            )
        cond = conditions_of(translated, params)
        kept = {
            name: resolve(r, params, cond)
            for name, r in translated["Resources"].items()
            if cond.get(r.get("Condition"), True)
        }
        edge = mode == "cloudfront"

        def check(ok, what):
            if not ok:
                errors.append(f"{mode}: {what}")

        apis = [r for r in kept.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
        check(len(apis) == 1, "one HTTP API")
        # SAM writes it into the API's OpenAPI body.
        servers = apis[0]["Properties"].get("Body", {}).get("servers", [{}])
        disabled = servers[0].get("x-amazon-apigateway-endpoint-configuration", {})
        check(
            disabled.get("disableExecuteApiEndpoint") is edge,
            f"the execute-api endpoint disabled: {edge}",
        )
        dist = kept.get("EdgeDistribution")
        check((dist is not None) == edge, "a CloudFront distribution exactly behind the edge")
        if edge and dist:
            config = dist["Properties"]["DistributionConfig"]
            origin = config["Origins"][0]
            check(
                origin["DomainName"] == {"Fn::GetAtt": ["CustomDomain", "RegionalDomainName"]},
                "CloudFront's origin is the custom domain's regional target",
            )
            check(config["Aliases"] == [given["DomainName"]], "CloudFront serves DomainName")
            check("CustomDomainMapping" in kept, "the API is mapped on its custom domain")
            policy = kept["EdgeOriginRequestPolicy"]["Properties"]["OriginRequestPolicyConfig"]
            headers = policy["HeadersConfig"]
            check(
                headers["HeaderBehavior"] == "allViewerAndWhitelistCloudFront"
                and "CloudFront-Viewer-Address" in headers["Headers"],
                "every viewer header and CloudFront-Viewer-Address reach the API",
            )
            check(
                config["DefaultCacheBehavior"]["OriginRequestPolicyId"]
                == {"Ref": "EdgeOriginRequestPolicy"},
                "the distribution uses that origin request policy",
            )
        data_key = params.get("ChallengeSigning") == "data-key"
        replica = params.get("StackKeys") == "replica"
        wrapping = "ChallengeWrappingKeyReplica" if replica else "ChallengeWrappingKey"
        check(
            ("ChallengeWrappingKey" in kept or "ChallengeWrappingKeyReplica" in kept) == data_key,
            "the wrapping key exactly in data-key mode",
        )
        if data_key and not replica:
            key = kept["ChallengeWrappingKey"]["Properties"]
            check(key.get("MultiRegion") is True, "the wrapping key is multi-Region")
        errors.extend(f"{mode}: {e}" for e in table_errors(kept, params))
        errors.extend(f"{mode}: {e}" for e in key_errors(kept, params, source, cond))
        role = kept.get("ChallengeFunctionRole", {}).get("Properties", {})
        statements = [
            st
            for policy in role.get("Policies", [])
            for st in policy["PolicyDocument"]["Statement"]
            if isinstance(st, dict) and st.get("Effect") == "Allow"
        ]
        unwraps = [st for st in statements if st.get("Action") == "kms:Decrypt"]
        check(len(unwraps) == (1 if data_key else 0), "the challenge function unwraps exactly in data-key mode")
        for st in unwraps:
            context = st.get("Condition", {}).get("StringEquals", {})
            check(
                st.get("Resource") == {"Fn::GetAtt": [wrapping, "Arn"]}
                and context.get("kms:EncryptionContext:purpose") == "endpoint-stage challenge signing key"
                and "kms:EncryptionContext:table" in context,
                "the challenge function unwraps with the wrapping key and the data-key context only",
            )
        functions = {n: r for n, r in kept.items() if r["Type"] == "AWS::Lambda::Function"}
        signing = (
            functions.get("ChallengeFunction", {})
            .get("Properties", {})
            .get("Environment", {})
            .get("Variables", {})
            .get("CHALLENGE_SIGNING")
        )
        check(signing == ("data-key" if data_key else "kms"), f"the challenge function's CHALLENGE_SIGNING is its mode, not {signing}")
        check(len(functions) == 10, f"ten functions, not {sorted(functions)}")
        for name, f in functions.items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            present = {k for k, v in env.items() if v != {"Ref": "AWS::NoValue"}}
            check(
                ({"ORIGIN_SECRET", "ORIGIN_SECRET_PREVIOUS"} <= present) == edge
                and (edge or not present & {"ORIGIN_SECRET", "ORIGIN_SECRET_PREVIOUS"}),
                f"{name}: both origin secrets exactly behind the edge",
            )
            if edge:
                check(
                    env.get("ORIGIN_SECRET") == given["EdgeOriginSecret"]
                    and env.get("ORIGIN_SECRET_PREVIOUS") == given["EdgeOriginSecretPrevious"],
                    f"{name}: the origin secrets are the parameters'",
                )
            reserved = f["Properties"].get("ReservedConcurrentExecutions")
            capped = reserved not in (None, {"Ref": "AWS::NoValue"})
            check(capped == (name in LOGINLESS), f"{name}: reserved concurrency only if it serves no login")
            if capped:
                check(int(reserved) > 0, f"{name}: a positive reserved concurrency")
    errors.extend(global_table_errors(source))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    linted = f"{', '.join(SOURCES)} linted; " if "--sources" in sys.argv[1:] else ""
    print(
        f"check-modes: {linted}{', '.join(MODES)}: translated and as promised, linted: "
        f"{', '.join(m for m in MODES if m in lint_modes)}; deploy/global.yaml's table has template.yaml's schema"
    )


if __name__ == "__main__":
    main()
