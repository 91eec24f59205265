"""The official JavaScript SDK (`@langchain/langgraph-sdk`, pinned in clients/js with its
lockfile) against real workers on both backends: `node --test clients/js/test/`.

`make test` installs it (`npm ci`); without Node or the installed SDK the test skips
with the reason, except under CI, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(300)

CLIENT_DIR = ROOT / "clients" / "js"


def _node() -> str:
    node = shutil.which("node")
    installed = (CLIENT_DIR / "node_modules" / "@langchain" / "langgraph-sdk").is_dir()
    if node and installed:
        return node
    reason = "Node.js is not installed" if not node else "run `make js-deps` (npm ci in clients/js)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is an error, not a skip", pytrace=False)
    pytest.skip(reason)


def test_javascript_sdk(server: ServerProcess) -> None:
    node = _node()
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", "test/"],
        cwd=CLIENT_DIR,
        env={**os.environ, "LANGGRAPH_API_URL": server.base_url},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 8, result.stdout[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, re.MULTILINE)
