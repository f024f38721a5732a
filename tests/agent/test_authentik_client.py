"""The agent API as authentik's own generated API client sees it (PyPI `authentik-client`, the
same OpenAPI schema and version as the `authentik-client` crate the platform agent uses): every
call goes through the client's API classes and models, never hand-written requests or checks of
our own schema. Run inside the local stack (`make test`: scripts/stack-lib.sh exports ENDPOINT_API
and STACK_ADMIN); the stage itself is answered as the Rust agent does in
tests/tests/e2e/real_agent.rs."""
import json
import os
import subprocess
import time
import urllib.request

from authentik_client.api_client import ApiClient
from authentik_client.configuration import Configuration
from authentik_client.api.core_api import CoreApi
from authentik_client.api.endpoints_api import EndpointsApi
from authentik_client.models.agent_config import AgentConfig
from authentik_client.models.current_brand import CurrentBrand
from authentik_client.exceptions import ForbiddenException
from authentik_client.models.paginated_group_list import PaginatedGroupList
from authentik_client.models.paginated_user_list import PaginatedUserList
from authentik_client.models.device_facts_request import DeviceFactsRequest
from authentik_client.models.device_group_request import DeviceGroupRequest
from authentik_client.models.device_user_request import DeviceUserRequest
from authentik_client.models.enroll_request import EnrollRequest
from authentik_client.models.hardware_request import HardwareRequest
from authentik_client.models.process_request import ProcessRequest
from authentik_client.models.software_request import SoftwareRequest

API = os.environ.get("ENDPOINT_API", "")
ADMIN = os.environ.get("STACK_ADMIN", "")

def admin(*args):
    """The stack's endpoint-admin, --json."""
    assert ADMIN, "run through make test (scripts/stack-lib.sh exports STACK_ADMIN)"
    out = subprocess.run([ADMIN, *args, "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return json.loads(out.stdout)


def client(device_token=None):
    """An agent's client: the API's base, and `Authorization: Bearer+agent <key>` for the
    device routes (what the platform agent sends)."""
    api = ApiClient(Configuration(host=f"{API}/api/v3"))
    if device_token:
        api.default_headers["Authorization"] = f"Bearer+agent {device_token}"
    return api


def enrolled(serial, name="desktop-1"):
    """A connector with a P-256 key, a required stage, and a device enrolled with the client."""
    key = admin("key", "create", "--spec", "ECC_NIST_P256")["key_id"]
    connector = admin("connector", "create", "--name", "python-agent", "--challenge-key", key)["id"]
    admin("stage", "create", "--connector", connector, "--mode", "required")
    enrollment = admin("enrollment-token", "create", "--connector", connector, "--expires", "1h")["key"]
    api = ApiClient(Configuration(host=f"{API}/api/v3", access_token=enrollment))
    token = EndpointsApi(api).endpoints_agents_connectors_enroll_create(
        EnrollRequest(device_serial=serial, device_name=name)
    ).token
    return token


def raw(path, device_token=None):
    """The raw JSON of a GET, to compare its keys with the model's."""
    request = urllib.request.Request(f"{API}/api/v3{path}")
    if device_token:
        request.add_header("Authorization", f"Bearer+agent {device_token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def aliases(model):
    return {f.alias or name for name, f in model.model_fields.items()}


def required(model):
    return {f.alias or name for name, f in model.model_fields.items() if f.is_required()}


def test_agent_config_and_the_brand_parse_as_the_models_with_nothing_extra():
    serial = f"VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 {int(time.time()) % 100:02d}"
    token = enrolled(serial)
    config = EndpointsApi(client(token)).endpoints_agents_connectors_agent_config_retrieve()
    assert isinstance(config, AgentConfig)
    body = raw("/endpoints/agents/connectors/agent_config/", token)
    assert set(body) == aliases(AgentConfig), "every field of the model and no other"
    assert set(body["system_config"]) >= required(type(config.system_config))
    assert set(body["system_config"]) <= aliases(type(config.system_config))
    assert config.license_status.value == "unlicensed"
    assert config.system_config.error_reporting.enabled is False
    assert config.system_config.capabilities == []
    assert config.system_config.cache_timeout == 300
    assert config.jwks_auth == {"keys": []}
    assert config.jwks_challenge and config.jwks_challenge["keys"], "the connector's key"
    shown = admin("device", "show", serial)
    assert str(config.device_id) == shown["id"], "device_id is the device's UUID"
    assert str(config.device_id) != serial

    # The Rust agent keeps its remote configuration only when the brand call succeeds too.
    brand = CoreApi(client(token)).core_brands_current_retrieve()
    assert isinstance(brand, CurrentBrand)
    assert brand.branding_title == "endpoint-stage"
    assert brand.matched_domain == "127.0.0.1"
    assert brand.ui_theme.value == "automatic"
    body = raw("/core/brands/current/")
    assert required(CurrentBrand) <= set(body) <= aliases(CurrentBrand)
    # No credentials needed.
    assert CoreApi(client()).core_brands_current_retrieve().branding_title == "endpoint-stage"


def test_the_directory_sync_gets_one_empty_page_with_a_device_token_and_403_without():
    """The Rust agent syncs users and groups (for Linux logins) at start and every refresh
    interval, `core/users/?include_groups=true&page=N` and `core/groups/`: an empty page in
    authentik's paginated shape keeps its directory empty without a warning."""
    token = enrolled(f"PY-DIR-{time.time_ns()}")
    users = CoreApi(client(token)).core_users_list(include_groups=True, page=1)
    assert isinstance(users, PaginatedUserList)
    assert users.results == [] and users.pagination.count == 0
    assert users.pagination.total_pages == 1 and users.pagination.current == 1
    assert users.pagination.next == 0 and users.pagination.previous == 0
    groups = CoreApi(client(token)).core_groups_list(page=1)
    assert isinstance(groups, PaginatedGroupList)
    assert groups.results == [] and groups.pagination.count == 0
    for path in ("/core/users/?include_groups=true&page=1", "/core/groups/"):
        body = raw(path, token)
        assert set(body) == aliases(PaginatedUserList) == {"pagination", "results", "autocomplete"}
        assert body["autocomplete"] == {}
    for bad in (None, "not-a-device-token"):
        for call in (lambda: CoreApi(client(bad)).core_users_list(include_groups=True),
                     lambda: CoreApi(client(bad)).core_groups_list()):
            try:
                call()
            except ForbiddenException as refused:
                assert refused.status == 403
            else:
                raise AssertionError("the directory needs a valid device token")


def desktop_facts(serial, target):
    """A desktop's facts of about `target` bytes in the client's request models: processes named
    by their full command lines, installed packages, users and groups."""
    processes, software, size, i = [], [], 0, 0
    while size < target:
        cmdline = (
            f"/usr/lib/firefox/firefox -contentproc -childID {i} -isForBrowser -prefsLen 31337 "
            f"-prefMapSize 244787 -jsInitLen 235124 -parentBuildID 20261120{i:06} -greomni "
            f"/usr/lib/firefox/omni.ja -appDir /usr/lib/firefox/browser {4000 + i} true tab"
        )
        size += len(cmdline) + 110
        processes.append(ProcessRequest(id=i, name=cmdline, user="alice"))
        software.append(
            SoftwareRequest(name=f"lib-package-{i}-dev", version=f"1.{i % 17}.{i % 5}-{i % 3}ubuntu1", source="deb")
        )
        i += 1
    facts = {
        "processes": processes,
        "software": software,
        "users": [DeviceUserRequest(id=str(1000 + u), username=f"user{u}") for u in range(50)],
        "groups": [DeviceGroupRequest(id=str(2000 + g)) for g in range(50)],
    }
    if serial:
        facts["hardware"] = HardwareRequest(serial=serial)
    return DeviceFactsRequest(**facts)


def test_a_desktop_checks_in_a_large_document_and_ones_without_hardware():
    serial = f"VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 e9 {int(time.time())}"
    token = enrolled(serial)
    agent = EndpointsApi(client(token))
    big = desktop_facts(serial, 1536 * 1024)
    sent = big.to_dict()
    assert 1400 * 1024 <= len(json.dumps(sent)) < 2 * 1024 * 1024
    agent.endpoints_agents_connectors_check_in_create(big)
    stored = admin("device", "show", serial)["facts"]
    assert stored["truncated"] is False, "a desktop document compresses to fit"
    assert stored["facts"] == json.loads(json.dumps(sent))

    # The agent sends null hardware when it cannot read it, or no hardware key at all.
    no_hardware = desktop_facts(None, 10 * 1024)
    no_hardware.hardware = None
    assert "hardware" in no_hardware.to_dict(), "sent as null"
    agent.endpoints_agents_connectors_check_in_create(no_hardware)
    assert admin("device", "show", serial)["facts"]["facts"]["hardware"] is None
    absent = desktop_facts(None, 10 * 1024)
    assert "hardware" not in absent.to_dict(), "not sent at all"
    agent.endpoints_agents_connectors_check_in_create(absent)
    stored = admin("device", "show", serial)["facts"]["facts"]
    assert "hardware" not in stored
    assert stored == json.loads(json.dumps(absent.to_dict()))


def test_a_document_too_large_for_an_item_is_stored_truncated_and_shown_so():
    serial = f"To Be Filled By O.E.M. (truncated facts {int(time.time())})"
    token = enrolled(serial)
    state = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1

    def noise(length):
        # Hex of a xorshift stream: command lines that do not compress.
        nonlocal state
        out = ""
        while len(out) < length:
            state ^= (state << 13) & mask
            state ^= state >> 7
            state ^= (state << 17) & mask
            out += f"{state:016x}"
        return out[:length]

    doc = DeviceFactsRequest(
        hardware=HardwareRequest(serial=serial),
        processes=[ProcessRequest(id=i, name=f"/opt/app/bin/worker{i} --token {noise(440)}") for i in range(2000)],
        software=[SoftwareRequest(name=f"pkg-{i}-{noise(180)}", source="deb") for i in range(4000)],
    )
    size = len(json.dumps(doc.to_dict()))
    assert 1800 * 1024 <= size < 2 * 1024 * 1024, size
    EndpointsApi(client(token)).endpoints_agents_connectors_check_in_create(doc)

    shown = admin("device", "show", serial)
    assert shown["identifier"] == serial
    assert shown["facts"]["truncated"] is True
    facts = shown["facts"]["facts"]
    assert facts["hardware"]["serial"] == serial
    # Command lines were dropped first: each kept process is named by its program alone.
    kept = facts.get("processes") or []
    assert kept
    for i, p in enumerate(kept):
        assert p["name"] == f"/opt/app/bin/worker{i}"
    # Then lists lost entries from their end: what is kept is a prefix.
    kept = facts.get("software") or []
    assert len(kept) < 4000
    for i, p in enumerate(kept):
        assert p["name"].startswith(f"pkg-{i}-"), i


FACTS = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "facts")


def fixture(name):
    """A shipped facts document, parsed by the generated client's own model (so it is exactly
    what the real agent's DeviceFactsRequest can be)."""
    with open(os.path.join(FACTS, name), encoding="utf-8") as f:
        return DeviceFactsRequest.from_dict(json.load(f))


def test_every_shipped_fixture_is_a_device_facts_request_and_is_evaluated_at_check_in():
    serial = f"PY-COMPLIANCE-{int(time.time() * 1000)}"
    token = enrolled(serial)
    connector = admin("device", "show", serial)["tokens"][0]["connector"]
    stages = [s for s in admin("stage", "list")["stages"] if s["connector"] == connector]
    policy = admin("policy", "create", "--name", "python baseline")["id"]
    for rule in (
        ["os-family", "--allow", "mac_os,windows,linux"],
        ["disk-encryption"],
        ["firewall"],
        ["software", "--name", "osquery", "--min-version", "5.10"],
    ):
        admin("policy", "add-rule", policy, *rule)
    admin("stage", "set-policy", stages[0]["id"], policy)
    agent = EndpointsApi(client(token))
    for family in ("macos", "windows", "linux"):
        for state, want in (("non-compliant", "non_compliant"), ("compliant", "compliant")):
            document = fixture(f"{family}-{state}.json")
            # Every field the fixture has survives the model: nothing is dropped or renamed.
            with open(os.path.join(FACTS, f"{family}-{state}.json"), encoding="utf-8") as f:
                assert document.to_dict() == json.load(f)
            agent.endpoints_agents_connectors_check_in_create(document)
            shown = admin("device", "show", serial)["compliance"]
            assert [c["status"] for c in shown if c["policy"] == policy] == [want], (family, state, shown)


def test_a_screen_lock_reported_in_a_vendor_namespace_is_checked_at_check_in():
    """authentik's DeviceFactsRequest has no screen-lock field: the `screen-lock` rule reads
    `screen_lock_enabled` from the `vendor` namespaces, which the generated model carries."""
    serial = f"PY-SCREEN-LOCK-{int(time.time() * 1000)}"
    token = enrolled(serial)
    connector = admin("device", "show", serial)["tokens"][0]["connector"]
    stage = [s for s in admin("stage", "list")["stages"] if s["connector"] == connector][0]
    policy = admin("policy", "create", "--name", "screen lock")["id"]
    admin("policy", "add-rule", policy, "screen-lock")
    admin("stage", "set-policy", stage["id"], policy)
    agent = EndpointsApi(client(token))

    def status(vendor):
        document = fixture("macos-compliant.json")
        document.vendor = vendor
        agent.endpoints_agents_connectors_check_in_create(document)
        shown = admin("device", "show", serial)["compliance"]
        return [c["status"] for c in shown if c["policy"] == policy]

    platform = {"agent_version": "0.8.0"}
    assert status({"goauthentik.io/platform": platform}) == ["non_compliant"]  # not reported
    locked = {"goauthentik.io/platform": platform, "fleetdm.com": {"screen_lock_enabled": True}}
    assert status(locked) == ["compliant"]
    locked["fleetdm.com"]["screen_lock_enabled"] = False
    assert status(locked) == ["non_compliant"]
