"""hmst.SemanticMemory, hmst.EpisodicMemory, Model.embed and consolidation over the fixture model."""
import os
import shutil
import threading

import numpy as np
import pytest

import hmst

FIXTURE = os.environ.get("HMST_FIXTURE", os.path.join(os.path.dirname(__file__), "../../../build/fixtures/micro"))


@pytest.fixture(scope="module")
def model():
    with hmst.Model(FIXTURE) as m:
        yield m


def test_semantic_vectors_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    with hmst.SemanticMemory(16, index="IVF4,Flat", metric="cosine", nprobe=4) as mem:
        ids = mem.add(x, texts=[f"row {i}" for i in range(200)], source="pytest")
        assert ids.dtype == np.int64 and len(set(ids.tolist())) == 200
        assert mem.stats()["phase"] == "ready"  # 200 >= 39 * 4: trained lazily
        found, scores = mem.search(x[:5], k=3)
        assert found.shape == (5, 3) and scores.dtype == np.float32
        assert (found[:, 0] == ids[:5]).all()
        assert mem.text(ids[7]) == "row 7"
        # ids are integers: 3.7 is refused (it was truncated to 3), as are values beyond int64
        with pytest.raises(TypeError):
            mem.remove([3.7])
        with pytest.raises(TypeError):
            mem.add(x[:1], ids=[5.5])
        with pytest.raises(hmst.HMSTError):
            mem.remove([2**63])
        assert mem.remove([ids[0], 10**12]) == 1
        assert len(mem) == 199
        found, _ = mem.search(x[0], k=1)
        assert found[0, 0] != ids[0]
        mem.save(tmp_path / "sem")
        with hmst.SemanticMemory.load(tmp_path / "sem") as back:
            assert len(back) == 199
            np.testing.assert_array_equal(back.search(x[:5], k=3)[0], mem.search(x[:5], k=3)[0])
        with pytest.raises(hmst.HMSTError, match="non-finite"):
            mem.add(np.full((1, 16), np.nan, dtype=np.float32))
        with pytest.raises(hmst.HMSTError) as e:
            mem.add(np.zeros((1, 15), dtype=np.float32))
        assert e.value.status_name == "INVALID_ARGUMENT"
        with pytest.raises(hmst.HMSTError, match="k 0 must be in 1"):
            mem.search(x[0], k=0)
        # values that a 32-bit C field would wrap (-2**32 + 5 -> 5) are refused before the call:
        # the result buffer is sized from k
        with pytest.raises(hmst.HMSTError, match="k -4294967291 must be in 1"):
            mem.search(x[0], k=-2**32 + 5)
        with pytest.raises(hmst.HMSTError, match="nprobe"):
            mem.search(x[0], k=1, nprobe=2**32 + 1)
        with pytest.raises(TypeError, match="k must be an int"):
            mem.search(x[0], k=2.5)
        with pytest.raises(hmst.HMSTError, match="ids 9223372036854775808 must be in"):
            mem.add(x[:2], ids=[2**63, 1])
        with pytest.raises(hmst.HMSTError) as e:
            mem.text(10**12)
        assert e.value.status_name == "NOT_FOUND"
    with pytest.raises(hmst.HMSTError) as e:
        hmst.SemanticMemory.load(tmp_path / "nothing")
    assert e.value.status_name == "NOT_FOUND"
    (tmp_path / "sem" / "memory.json").write_text("{")
    with pytest.raises(hmst.HMSTError) as e:
        hmst.SemanticMemory.load(tmp_path / "sem")
    assert e.value.status_name == "BAD_FORMAT"


def test_background_training():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    with hmst.SemanticMemory(8, index="IVF4,Flat", metric="l2") as mem:
        mem.train_in_background()
        ids = mem.add(x)
        found, _ = mem.search(x[10], k=1)  # served while training
        assert found[0, 0] == ids[10]
        mem.wait_training()
        assert mem.stats()["phase"] == "ready" and len(mem) == 300
        assert mem.search(x[200], k=1, nprobe=4)[0][0, 0] == ids[200]


def test_embed_episodic_and_consolidation(model, tmp_path):
    e = model.embed("hello there")
    assert e.shape == (model.n_embd,) and e.dtype == np.float32
    assert abs(float(np.dot(e, e)) - 1) < 1e-4
    np.testing.assert_array_equal(e, model.embed("hello there"))
    notes = ["The licensee may copy the work.", "Warranty is disclaimed.", "Source must be offered.", "Patents."]
    with hmst.EpisodicMemory(model, max_entries=16, state_size=32) as epi, \
            hmst.SemanticMemory(model.n_embd, index="Flat") as sem:
        ids = [epi.add(model, t, importance=1.0 if i == 1 else 0.0) for i, t in enumerate(notes)]
        hits = epi.search(model, notes[1], k=2)
        assert hits[0].id == ids[1] and hits[0].text == notes[1] and abs(hits[0].score - 1) < 1e-4
        assert len(epi.entries()) == 4
        epi.save(tmp_path / "epi")
        with hmst.EpisodicMemory.load(tmp_path / "epi") as back:
            assert [h.id for h in back.search(model, notes[2], k=1)] == [ids[2]]
        moved = hmst.consolidate(epi, sem, model, threshold=0.45)
        assert moved >= 1 and len(sem) == moved and len(epi) == 4 - moved
        top = sem.search_text(model, notes[1], k=1)[0]
        assert top.text == notes[1]
        with pytest.raises(hmst.HMSTError):
            epi.add_key(np.zeros(31, dtype=np.float32))
        # background consolidation while another thread searches
        for i in range(6):
            epi.add(model, f"note {i}", importance=1.0)
        errors = []

        def searcher():
            try:
                for _ in range(20):
                    sem.search_text(model, "note", k=2)
            except Exception as ex:  # pragma: no cover - reported below
                errors.append(ex)
        with hmst.Consolidator(epi, sem, model, interval=0.01, threshold=0.45) as c:
            t = threading.Thread(target=searcher)
            t.start()
            t.join()
        assert not errors
        assert c.passes >= 0 and c.moved >= 0


def test_memory_refuses_another_model_until_reencoded(model, tmp_path):
    """A memory records the model that encoded its texts: another model's text calls raise with
    the way out, and reencoded(other) is a copy (same ids) that serves the other model."""
    notes = ["The licensee may copy the work.", "Warranty is disclaimed."]
    with hmst.Model.random("micro", seed=7) as rnd:   # other weights, with the fixture's tokenizer
        rnd.save(tmp_path / "other")
    shutil.copy(os.path.join(FIXTURE, "tokenizer.json"), tmp_path / "other")
    with hmst.Model(tmp_path / "other") as other, \
            hmst.EpisodicMemory(model, max_entries=16, state_size=32) as epi, \
            hmst.SemanticMemory(model.n_embd, index="Flat") as sem:
        assert not sem.stats()["model_recorded"]   # empty: it takes the model that fills it
        ids = [epi.add(model, t) for t in notes]
        sids = [sem.add_text(model, t) for t in notes]
        assert epi.stats()["model_recorded"] and sem.stats()["model_recorded"]
        for call in (lambda: epi.search(other, notes[0]), lambda: epi.add(other, "x"),
                     lambda: sem.search_text(other, notes[0]), lambda: sem.add_text(other, "x")):
            with pytest.raises(hmst.HMSTError, match="by another model.*reencode") as e:
                call()
            assert e.value.status_name == "INVALID_ARGUMENT"
        with epi.reencoded(other) as epi2, sem.reencoded(other) as sem2:
            assert [epi2.search(other, t, k=1)[0].id for t in notes] == ids
            assert [sem2.search_text(other, t, k=1)[0].id for t in notes] == sids
            with pytest.raises(hmst.HMSTError, match="by another model"):
                epi2.search(model, notes[0])
            with pytest.raises(hmst.HMSTError, match="by another model"):
                sem2.search_text(model, notes[0])
        assert epi.remove([]) == 0 and sem.remove([]) == 0   # nothing to remove: a no-op
        # the originals are unchanged and still serve their model
        assert epi.search(model, notes[1], k=1)[0].id == ids[1]
        assert sem.search_text(model, notes[1], k=1)[0].id == sids[1]
