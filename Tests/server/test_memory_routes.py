"""Memory routes: add, list, search, delete by id, delete an owner's entries, stats, for both
tiers; owners never see each other's entries; everything acknowledged survives a restart."""
import requests


def call(server, method, path, **kw):
    r = requests.request(method, server.url + path, headers=server.headers(), timeout=60, **kw)
    return r


def test_memory_lifecycle_and_owner_scoping(server):
    ids = {}
    for tier in ("episodic", "semantic"):
        for owner, text in [("alice", "alice likes green tea"), ("alice", "alice lives in Lisbon"),
                            ("bob", "bob likes green tea"), ("bob", "bob lives in Oslo")]:
            r = call(server, "POST", f"/v1/hmst/memory/{tier}/entries", json={"owner": owner, "text": text})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["owner"] == owner and body["tier"] == tier and body["saved"] is True
            ids[(tier, text)] = body["id"]
    # search is scoped: alice sees only alice's entries, whatever the query
    for tier in ("episodic", "semantic", "both"):
        r = call(server, "POST", f"/v1/hmst/memory/{tier}/search", json={"owner": "alice", "query": "bob likes green tea", "k": 10})
        assert r.status_code == 200, r.text
        hits = r.json()["data"]
        assert hits and all(h["owner"] == "alice" and h["text"].startswith("alice") for h in hits)
        assert len(hits) == (4 if tier == "both" else 2)
        assert all(hits[i]["score"] >= hits[i + 1]["score"] for i in range(len(hits) - 1))
    # an entry's own text is its nearest neighbour in the semantic tier (same embedding)
    r = call(server, "POST", "/v1/hmst/memory/semantic/search", json={"owner": "bob", "query": "bob lives in Oslo", "k": 1})
    assert r.json()["data"][0]["id"] == ids[("semantic", "bob lives in Oslo")]
    # list, stats
    listed = call(server, "GET", "/v1/hmst/memory/both/entries", params={"owner": "alice"}).json()["data"]
    assert sorted(e["text"] for e in listed) == sorted(["alice likes green tea", "alice lives in Lisbon"] * 2)
    st = call(server, "GET", "/v1/hmst/memory/stats", params={"owner": "bob"}).json()
    assert st["episodic"]["owner_count"] == 2 and st["semantic"]["owner_count"] == 2
    # delete by id: not through another owner
    eid = ids[("episodic", "alice lives in Lisbon")]
    r = call(server, "DELETE", f"/v1/hmst/memory/episodic/entries/{eid}", params={"owner": "bob"})
    assert r.status_code == 404
    r = call(server, "DELETE", f"/v1/hmst/memory/episodic/entries/{eid}", params={"owner": "alice"})
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert call(server, "DELETE", f"/v1/hmst/memory/episodic/entries/{eid}", params={"owner": "alice"}).status_code == 404
    # delete an owner's entries in both tiers
    r = call(server, "DELETE", "/v1/hmst/memory/both/entries", params={"owner": "bob"})
    assert r.json()["deleted"] == 4
    st = call(server, "GET", "/v1/hmst/memory/stats", params={"owner": "bob"}).json()
    assert st["episodic"]["owner_count"] == 0 and st["semantic"]["owner_count"] == 0
    r = call(server, "POST", "/v1/hmst/memory/semantic/search", json={"owner": "bob", "query": "tea"})
    assert r.json()["data"] == []


def test_memory_errors(server):
    assert call(server, "POST", "/v1/hmst/memory/both/entries", json={"owner": "a", "text": "x"}).status_code == 404
    assert call(server, "POST", "/v1/hmst/memory/nope/search", json={"owner": "a", "query": "x"}).status_code == 404
    r = call(server, "POST", "/v1/hmst/memory/episodic/entries", json={"text": "no owner"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "owner"
    r = call(server, "POST", "/v1/hmst/memory/episodic/entries", json={"owner": "a\u0001b", "text": "x"})
    assert r.status_code == 400
    r = call(server, "DELETE", "/v1/hmst/memory/semantic/entries/abc", params={"owner": "a"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "id"
    r = call(server, "POST", "/v1/hmst/memory/semantic/search", json={"owner": "a", "query": "x", "k": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "k"
    # an owner is limited in bytes: one letter with 300 combining marks is one character of 601 bytes
    r = call(server, "POST", "/v1/hmst/memory/episodic/entries", json={"owner": "e" + "\u0301" * 300, "text": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "owner"
    r = call(server, "POST", "/v1/hmst/memory/semantic/entries", json={"owner": "a", "text": "x", "source": "s" * 70000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "source"


def test_malformed_chunked_body_is_a_client_error(server):
    import socket
    host, port = server.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        auth = "".join(f"{k}: {v}\r\n" for k, v in server.headers().items())
        s.sendall(("POST /v1/hmst/memory/semantic/search HTTP/1.1\r\nHost: x\r\n" + auth +
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n").encode())
        status = s.recv(4096).split(b"\r\n", 1)[0]
    assert b" 400 " in status, status


def test_one_owners_removals_do_not_fail_anothers_reads(server):
    """Bob adds and removes entries while Alice lists, searches and reads stats: the tiers lock
    each call, not the pair of calls a route makes, so Alice's routes skip what vanished
    (before: 404 "unknown id", 400 "k = 0")."""
    import concurrent.futures as cf
    import threading
    for tier in ("episodic", "semantic"):
        call(server, "POST", f"/v1/hmst/memory/{tier}/entries", json={"owner": "alice2", "text": "alice2 keeps bees"})
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            for tier in ("episodic", "semantic"):
                r = call(server, "POST", f"/v1/hmst/memory/{tier}/entries", json={"owner": "bob2", "text": "bob2 note"})
                assert r.status_code == 200, r.text
            call(server, "DELETE", "/v1/hmst/memory/both/entries", params={"owner": "bob2"})

    def read(i):
        if i % 3 == 0:
            r = call(server, "GET", "/v1/hmst/memory/stats", params={"owner": "alice2"})
        elif i % 3 == 1:
            r = call(server, "GET", "/v1/hmst/memory/both/entries", params={"owner": "alice2"})
        else:
            r = call(server, "POST", "/v1/hmst/memory/both/search", json={"owner": "alice2", "query": "bees", "k": 2})
        return r.status_code, r.text

    with cf.ThreadPoolExecutor(3) as ex:
        writer = ex.submit(churn)
        results = list(ex.map(read, range(120)))
        stop.set()
        writer.result()
    bad = [r for r in results if r[0] != 200]
    assert not bad, bad[:3]


def test_memory_persists_across_restart(start_server, tmp_path):
    mem = str(tmp_path / "mem")
    s = start_server(memory=mem)
    added = []
    for i in range(5):
        for tier in ("episodic", "semantic"):
            r = call(s, "POST", f"/v1/hmst/memory/{tier}/entries", json={"owner": f"user{i % 2}", "text": f"fact number {i}"})
            added.append((tier, r.json()["id"], f"user{i % 2}", f"fact number {i}"))
    assert s.stop() == 0
    s2 = start_server(memory=mem)
    for tier, eid, owner, text in added:
        listed = call(s2, "GET", f"/v1/hmst/memory/{tier}/entries", params={"owner": owner}).json()["data"]
        assert {"id": eid, "text": text} in [{"id": e["id"], "text": e["text"]} for e in listed]


def test_memory_disabled_without_directory(start_server):
    s = start_server(memory=None, key=None, slots=1)
    r = requests.get(s.url + "/v1/hmst/memory/stats")
    assert r.status_code == 404 and r.json()["error"]["code"] == "memory_disabled"
