"""Episodic and semantic memory over a checkpoint: remember texts, recall them, consolidate the
important ones into the FAISS store and search it.

    python3 examples/python/memory_search.py CHECKPOINT_DIR [TEXT_FILE]

TEXT_FILE holds one memory per line (default: a few built-in lines).
"""
import sys

import hmst

if len(sys.argv) < 2:
    sys.exit("usage: memory_search.py CHECKPOINT_DIR [TEXT_FILE]")
lines = ["The meeting moved to Tuesday at ten.", "Alice prefers tea to coffee.",
         "The server password rotates every month.", "Bob's birthday is on the fourth of July.",
         "The build breaks when OpenBLAS is missing."]
if len(sys.argv) > 2:
    with open(sys.argv[2], encoding="utf-8", errors="replace") as f:
        lines = [l.strip() for l in f if l.strip()][:200]

with hmst.Model(sys.argv[1]) as model, \
        hmst.EpisodicMemory(model, max_entries=256, state_size=64) as episodic, \
        hmst.SemanticMemory(model.n_embd, index="Flat") as semantic:
    for i, text in enumerate(lines):
        episodic.add(model, text, importance=1.0 if i % 2 == 0 else 0.2)
    query = lines[len(lines) // 2]
    print(f"episodic memory: {len(episodic)} entries; recall of {query!r}:")
    for hit in episodic.search(model, query, k=3):
        print(f"  {hit.id:4d}  {hit.score:.3f}  {hit.text}")
    moved = hmst.consolidate(episodic, semantic, model, threshold=0.5)
    print(f"consolidated {moved} important entries into semantic memory ({len(episodic)} stay episodic)")
    query = lines[0]
    print(f"semantic search for {query!r}:")
    for hit in semantic.search_text(model, query, k=3):
        print(f"  {hit.id:4d}  {hit.score:.3f}  {hit.text}")
