"""Measures SQLite FTS5 (the system libsqlite3 through Python's sqlite3 module) on synthetic
short facts: build (one transaction, file-backed, WAL), reopen, and BM25 top-50 query latency
for 6-term OR queries. The numbers behind the lexical-engine decision in README.md (Retrieval).
    python3 benchmarks/fts5_probe.py 10000 1000000
"""
import json, os, random, sqlite3, sys, tempfile, time

def corpus(n, seed=0):
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(50000)]
    zipf = [1.0 / (i + 1) for i in range(len(vocab))]
    words = rng.choices(vocab, weights=zipf, k=n * 10)
    return [" ".join(words[i * 10:(i + 1) * 10]) for i in range(n)], vocab, zipf, rng

for n in map(int, sys.argv[1:] or ["10000"]):
    texts, vocab, zipf, rng = corpus(n)
    d = tempfile.mkdtemp()
    path = os.path.join(d, "m.db")
    t0 = time.perf_counter()
    c = sqlite3.connect(path)
    c.execute("pragma journal_mode=wal")
    c.execute("create virtual table t using fts5(text, tokenize='unicode61')")
    with c:
        c.executemany("insert into t(rowid, text) values (?, ?)", enumerate(texts))
    build = time.perf_counter() - t0
    c.close()
    t0 = time.perf_counter()
    c = sqlite3.connect(path)
    c.execute("select count(*) from t").fetchone()
    reopen = time.perf_counter() - t0
    queries = [" OR ".join(rng.choices(texts[rng.randrange(n)].split(), k=6)) for _ in range(200)]
    t0 = time.perf_counter()
    for q in queries:
        c.execute("select rowid, bm25(t) from t where t match ? order by rank limit 50", (q,)).fetchall()
    ms = (time.perf_counter() - t0) / len(queries) * 1000
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(json.dumps({"engine": "sqlite-fts5", "sqlite": sqlite3.sqlite_version, "n": n, "build_s": round(build, 3),
                      "reopen_s": round(reopen, 4), "query_ms": round(ms, 3), "bytes": size}), flush=True)
