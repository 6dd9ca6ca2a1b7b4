"""`hmst serve` runs the hmst-server beside the hmst executable, with the same arguments; a
missing server is a clear error."""
import os
import re
import signal
import subprocess

import requests

from conftest import CLI_BIN, FIXTURE, require_binaries


def test_hmst_serve_execs_the_server():
    require_binaries()
    env = {k: v for k, v in os.environ.items() if k != "HMST_SERVER"}
    p = subprocess.Popen([CLI_BIN, "serve", FIXTURE, "--port", "0", "--slots", "1", "--log-level", "warning"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        assert m, line + p.stderr.read()
        assert requests.get(m.group(1) + "/health", timeout=10).json()["status"] == "ok"
        r = requests.post(m.group(1) + "/v1/completions", json={"prompt": "x", "max_tokens": 2}, timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 2
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0   # the server itself answered SIGTERM: exec, not a child


def test_hmst_serve_without_server_is_a_clear_error():
    r = subprocess.run([CLI_BIN, "serve", FIXTURE], capture_output=True, text=True,
                       env=dict(os.environ, HMST_SERVER="/nonexistent/hmst-server"), timeout=30)
    assert r.returncode != 0
    assert "hmst-server" in r.stderr and "make all" in r.stderr
