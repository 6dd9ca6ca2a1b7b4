"""kill -9 of the server during a burst of memory writes: after a restart the directory loads
and every write that was acknowledged (HTTP 200) is there, with its text and owner."""
import signal
import threading
import time

import requests


def test_kill9_during_memory_writes(start_server, tmp_path):
    mem = str(tmp_path / "mem")
    s = start_server(memory=mem, slots=2)
    acked = []           # (tier, id, owner, text)
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        i = 0
        session = requests.Session()
        while not stop.is_set():
            tier = "episodic" if i % 2 else "semantic"
            text = f"writer {w} fact {i}"
            try:
                r = session.post(s.url + f"/v1/hmst/memory/{tier}/entries", headers=s.headers(),
                                 json={"owner": f"w{w}", "text": text}, timeout=30)
            except requests.RequestException:
                return  # the server died mid-request: not acknowledged
            if r.status_code == 200:
                with lock:
                    acked.append((tier, r.json()["id"], f"w{w}", text))
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        with lock:
            if len(acked) >= 40:
                break
        time.sleep(0.05)
    s.proc.send_signal(signal.SIGKILL)   # mid-burst: writers are still sending
    s.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 40, s.log

    s2 = start_server(memory=mem, slots=1)
    found = {}
    for w in range(6):
        for e in requests.get(s2.url + "/v1/hmst/memory/both/entries", params={"owner": f"w{w}"},
                              headers=s2.headers(), timeout=30).json()["data"]:
            found[(e["tier"], e["id"])] = (e["owner"], e["text"])
    missing = [a for a in acked if found.get((a[0], a[1])) != (a[2], a[3])]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost: {missing[:5]}"
