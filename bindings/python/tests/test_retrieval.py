"""hmst.retrieve: dense, lexical and hybrid retrieval over both memories, part scores as numpy
arrays, BM25 values by hand, errors, and the fixture model for text queries."""
import math
import os

import numpy as np
import pytest

import hmst

FIXTURE = os.environ.get("HMST_FIXTURE", os.path.join(os.path.dirname(__file__), "../../../build/fixtures/micro"))
DOCS = ["cat sat mat", "Cat, cat; dog", "dog runs fast far"]


@pytest.fixture(scope="module")
def model():
    with hmst.Model(FIXTURE) as m:
        yield m


@pytest.fixture()
def sem():
    with hmst.SemanticMemory(4, index="Flat") as mem:
        mem.add(np.eye(4, dtype=np.float32)[:3], texts=DOCS)
        yield mem


def test_lexical_scores_by_hand(sem):
    r = hmst.retrieve(sem, "the cat?", mode="lexical", k=5)
    assert isinstance(r.ids, np.ndarray) and r.ids.dtype == np.int64 and r.scores.dtype == np.float32
    assert r.ids.tolist() == [1, 0] and r.texts == [DOCS[1], DOCS[0]]
    # N = 3, avgdl = 10/3, idf(cat) = ln 1.6; tf 2 and tf 1 at |D| = 3
    idf = math.log(1.6)
    norm = 1.2 * (0.25 + 0.75 * 3 / (10 / 3))
    np.testing.assert_allclose(r.scores, [idf * 2 * 2.2 / (2 + norm), idf * 2.2 / (1 + norm)], rtol=1e-5)
    np.testing.assert_array_equal(r.lexical_ranks, [1, 2])
    assert np.isnan(r.dense_scores).all() and (r.dense_ranks == 0).all()
    assert len(hmst.retrieve(sem, "zebra", mode="lexical")) == 0


def test_dense_and_hybrid_with_vectors(sem):
    q = np.array([0.1, 0, 1, 0], dtype=np.float32)
    r = hmst.retrieve(sem, None, query=q, mode="dense", k=3)
    assert r.ids.tolist()[0] == 2 and r.dense_ranks.tolist() == [1, 2, 3]
    h = hmst.retrieve(sem, "fast dog", query=q, mode="hybrid", k=3)
    assert h.ids.tolist()[:2] == [2, 1]
    assert h.dense_ranks[0] == 1 and h.lexical_ranks[0] == 1
    assert h.scores[0] == pytest.approx(2 / 61, rel=1e-6)
    w = hmst.retrieve(sem, "fast dog", query=q, mode="hybrid", k=3, dense_weight=0.0)
    assert w.ids.tolist()[:2] == [2, 1]
    # coverage of "fast dog": doc 2 holds both terms, doc 1 "dog" alone, ln 1.6 / (ln 1.6 + ln(8/3)) = 0.324
    assert hmst.retrieve(sem, "fast dog", query=q, mode="hybrid", k=3, min_coverage=0.3).ids.tolist() == [2, 1]
    assert hmst.retrieve(sem, "fast dog", query=q, mode="dense", k=3, min_coverage=0.33).ids.tolist() == [2]
    with pytest.raises(hmst.HMSTError, match="min_coverage"):
        hmst.retrieve(sem, "fast dog", query=q, mode="hybrid", min_coverage=1.5)
    with pytest.raises(hmst.HMSTError, match="min_coverage"):
        hmst.retrieve(sem, None, query=q, mode="dense", min_coverage=0.5)


def test_errors(sem):
    with pytest.raises(ValueError, match="mode"):
        hmst.retrieve(sem, "cat", mode="fuzzy")
    with pytest.raises(hmst.HMSTError, match="model"):
        hmst.retrieve(sem, "cat", mode="hybrid")
    with pytest.raises(hmst.HMSTError, match="4 values"):
        hmst.retrieve(sem, "cat", query=np.zeros(3), mode="dense")
    with pytest.raises(hmst.HMSTError) as e:
        hmst.retrieve(sem, "cat", mode="lexical", k=0)
    assert e.value.status_name == "INVALID_ARGUMENT"
    with pytest.raises(TypeError):
        hmst.retrieve(object(), "cat", mode="lexical")


def test_remove_and_reload(sem, tmp_path):
    assert sem.remove([1]) == 1
    r = hmst.retrieve(sem, "cat dog", mode="lexical")
    assert 1 not in r.ids.tolist() and len(r) == 2
    sem.save(tmp_path / "sem")
    with hmst.SemanticMemory.load(tmp_path / "sem") as back:
        b = hmst.retrieve(back, "cat dog", mode="lexical")
        np.testing.assert_array_equal(b.ids, r.ids)
        np.testing.assert_array_equal(b.scores, r.scores)


def test_text_queries_with_model(model):
    facts = ["The capital of Zorbia is Quell.", "Mount Ferrow is 4200 metres high.", "The river Anth flows north."]
    with hmst.SemanticMemory(model.n_embd, index="Flat") as sem, hmst.EpisodicMemory(model, state_size=16) as epi:
        for f in facts:
            sem.add_text(model, f)
            epi.add(model, f)
        for mem in (sem, epi):
            r = hmst.retrieve(mem, "How high is Mount Ferrow?", model, k=3)
            assert r.texts[0] == facts[1] and r.lexical_ranks[0] == 1 and r.dense_ranks[0] >= 1
            assert len(hmst.retrieve(mem, "Anth", mode="lexical")) == 1
