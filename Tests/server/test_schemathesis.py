"""Property-based fuzz of hmst-server against its own OpenAPI document (GET /openapi.json)
with schemathesis: positive and negative inputs for every operation, a fixed number of
examples and a fixed seed so the run is bounded (about a minute on 2 cores). Checks: never a
5xx, status codes and content types as documented, responses matching their schemas.
POST /v1/hmst/ask is fuzzed too (its answers are capped at the server's 16 tokens here)."""
import os
import shutil
import subprocess
import sys

import pytest

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_fuzz(start_server, tmp_path):
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.fail("schemathesis is not installed (tools/setup-deps.sh installs it)")
    # small generation caps keep every fuzzed completion cheap
    s = start_server("--max-tokens-cap", "16", "--default-chat-max-tokens", "8", "--queue", "64",
                     memory=str(tmp_path / "mem"), slots=2)
    cmd = [st, "run", s.url + "/openapi.json", "--url", s.url, "-H", f"Authorization: Bearer {s.key}",
           "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--max-examples", os.environ.get("HMST_FUZZ_EXAMPLES", "25"),
           "--seed", "1", "--workers", "1", "--generation-database", "none", "--request-timeout", "60",
           "--no-color", "--suppress-health-check", "all"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    sys.stdout.write(r.stdout[-6000:])
    assert s.proc.poll() is None, "the server died during the fuzz:\n" + s.log[-4000:]
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-2000:]
