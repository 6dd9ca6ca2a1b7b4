"""Starts hmst-server for the tests: an untrained micro checkpoint (the Makefile's fixture,
build/fixtures/micro), a free loopback port, a fresh memory directory and an API key.

Environment (set by `make server-test`): HMST_SERVER_BIN, HMST_CLI_BIN, HMST_FIXTURE.
"""
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER_BIN = os.environ.get("HMST_SERVER_BIN", os.path.join(ROOT, "build", "bin", "hmst-server"))
CLI_BIN = os.environ.get("HMST_CLI_BIN", os.path.join(ROOT, "build", "bin", "hmst"))
FIXTURE = os.environ.get("HMST_FIXTURE", os.path.join(ROOT, "build", "fixtures", "micro"))
API_KEY = "test-key-1"


class Server:
    """One hmst-server process; `url` is its base URL, `log` what it wrote to stderr."""

    def __init__(self, *args, memory=None, key=API_KEY, slots=2, extra_env=None, checkpoint=None):
        self.memory = memory
        cmd = [SERVER_BIN, checkpoint or FIXTURE, "--port", "0", "--slots", str(slots), "--threads", "1"]
        if memory:
            cmd += ["--memory", memory]
        if key:
            cmd += ["--api-key", key]
        cmd += list(args)
        self.logfile = tempfile.NamedTemporaryFile(prefix="hmst-server-", suffix=".log", delete=False)
        env = dict(os.environ, **(extra_env or {}))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.logfile, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://[^ ]+)", line or "")
        if not m:
            self.proc.kill()
            raise RuntimeError(f"hmst-server did not start: {line!r}\n{self.log}")
        self.url = m.group(1)
        self.key = key

    @property
    def log(self):
        with open(self.logfile.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def headers(self):
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def client(self, **kw):
        import openai
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.key or "none", max_retries=0, timeout=60, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def require_binaries():
    for p in (SERVER_BIN, os.path.join(FIXTURE, "config.json")):
        if not os.path.exists(p):
            pytest.fail(f"{p} is missing: run `make server-test` (it builds the server and the fixture)")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    require_binaries()
    s = Server(memory=str(tmp_path_factory.mktemp("memory")), slots=2)
    yield s
    assert s.stop() == 0, s.log


@pytest.fixture
def start_server(tmp_path):
    """Factory for servers a test owns (killed at its end if still running)."""
    require_binaries()
    started = []

    def start(*args, **kw):
        s = Server(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
