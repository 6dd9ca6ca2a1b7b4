"""A small load test (the big one is benchmarks/server_load.py): concurrent clients, mixed
streaming and not, then the same requests one at a time give identical greedy outputs; a full
queue answers 503 with Retry-After and nothing else fails."""
import concurrent.futures as cf
import json
import re
import threading

import requests


def complete(server, i, stream):
    body = {"model": "micro", "prompt": f"Request {i % 7} about licenses", "max_tokens": 8, "temperature": 0,
            "stream": stream}
    r = requests.post(server.url + "/v1/completions", headers=server.headers(), json=body, timeout=60, stream=stream)
    if r.status_code != 200:
        return r.status_code, None
    if not stream:
        return 200, r.json()["choices"][0]["text"]
    text = ""
    for line in r.iter_lines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            for ch in json.loads(line[6:])["choices"]:
                text += ch["text"]
    return 200, text


def test_concurrent_equals_sequential(server):
    n = 60
    with cf.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda i: complete(server, i, i % 2 == 1), range(n)))
    assert all(code == 200 for code, _ in results), [c for c, _ in results if c != 200]
    sequential = [complete(server, i, False) for i in range(7)]
    for i, (_, text) in enumerate(results):
        assert text == sequential[i % 7][1], f"request {i} differs under load"


def test_full_queue_answers_503(start_server):
    s = start_server(memory=None, slots=1, key=None)
    s.stop()
    s = start_server("--queue", "0", memory=None, slots=1, key=None)
    codes, retry = [], []
    barrier = threading.Barrier(6)

    def one(_):
        barrier.wait()
        r = requests.post(s.url + "/v1/completions", json={"prompt": "x", "max_tokens": 64, "temperature": 0}, timeout=60)
        if r.status_code == 503:
            retry.append(r.headers.get("Retry-After"))
            assert r.json()["error"]["code"] == "server_busy"
        return r.status_code

    with cf.ThreadPoolExecutor(6) as ex:
        codes = list(ex.map(one, range(6)))
    assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
    assert all(v == "1" for v in retry)

    # every route's 503s are counted, not only those of the generation routes
    def embed(_):
        barrier.wait()
        return requests.post(s.url + "/v1/embeddings", json={"input": ["x " * 500] * 64}, timeout=60).status_code

    barrier = threading.Barrier(6)
    with cf.ThreadPoolExecutor(6) as ex:
        codes += list(ex.map(embed, range(6)))
    text = requests.get(s.url + "/metrics").text
    counted = float(re.search(r"^hmst_rejected_busy_total (\S+)$", text, re.M).group(1))
    assert counted == codes.count(503), (counted, codes)
