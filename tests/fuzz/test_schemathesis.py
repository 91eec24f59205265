"""Property-based fuzzing of the OpenAPI schema against the real multi-worker server.

Every phase, stateful included: it follows the schema's links from a created thread
to its reads, runs and deletion. A short run here; `make fuzz` runs longer
(FUZZ_EXAMPLES examples per operation).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(900)

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


def test_no_server_errors_and_responses_match_the_schema(tmp_path: Path) -> None:
    examples = os.environ.get("FUZZ_EXAMPLES", "15")
    seed = os.environ.get("FUZZ_SEED", "20261126")
    with ServerProcess(tmp_path, workers=2) as srv:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{srv.base_url}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                examples,
                "--seed",
                seed,
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--request-timeout",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=850,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        )
        log = srv.log()
    summary = result.stdout[-4000:]
    assert result.returncode == 0, f"{summary}\n--- server log ---\n{log[-4000:]}"
    assert "Stateful" in result.stdout and "links" in result.stdout, summary
    assert "unhandled error" not in log, log[-4000:]
