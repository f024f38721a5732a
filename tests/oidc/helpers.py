"""Helpers of the OpenID provider's suite: the operator's CLI, the simulator, and Chromium with
the stand-in extension (tests/browser/extension) and the simulator's native host."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
# The browser suites' page helpers (tests/browser/people.py): one way to load the hosted page.
sys.path.insert(0, str(ROOT / "tests" / "browser"))
from people import load_until  # noqa: E402,F401  (re-exported for the suite)
API = os.environ.get("ENDPOINT_API", "")
EXTENSION = ROOT / "tests" / "browser" / "extension"
EXTENSION_ID = "cpiflbgjplcglpcioajoollfokliibgn"  # from the manifest's "key"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def admin(*args):
    out = subprocess.run([os.environ["STACK_ADMIN"], *args, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return json.loads(out.stdout)


def agent(state, *args):
    binary = str(Path(os.environ["STACK_ADMIN"]).with_name("endpoint-agent"))
    out = subprocess.run([binary, "--state", str(state), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return out.stdout.strip()


@contextlib.contextmanager
def chromium_with_extension(state):
    """A throwaway Chromium profile with the stand-in extension and the native host answering
    for the device enrolled in `state`."""
    profile = Path(tempfile.mkdtemp(prefix="endpoint-stage-oidc-"))
    agent(state, "install-native-host", "--profile", str(profile), "--extension-id", EXTENSION_ID)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=False,
            ignore_default_args=["--disable-extensions"],
            args=["--headless=new", f"--disable-extensions-except={EXTENSION}", f"--load-extension={EXTENSION}", *FLAGS],
        )
        try:
            if not context.service_workers:
                context.wait_for_event("serviceworker", timeout=15000)
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
