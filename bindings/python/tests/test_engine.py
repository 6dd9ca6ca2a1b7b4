"""hmst.Engine over the fixture micro checkpoint: answers with decisions, citations, log-probs and
costs as Python values; fixed policies; streaming; errors as exceptions; context management."""
import os

import numpy as np
import pytest

import hmst

FIXTURE = os.environ.get("HMST_FIXTURE", os.path.join(os.path.dirname(__file__), "../../../build/fixtures/micro"))
FACTS = ["The licensee may copy the work.", "Warranty is disclaimed.", "Patents are licensed."]


@pytest.fixture(scope="module")
def parts():
    model = hmst.Model(FIXTURE)
    sem = hmst.SemanticMemory(dim=model.n_embd, index="Flat")
    for t in FACTS:
        sem.add_text(model, t)
    epi = hmst.EpisodicMemory(model)
    epi.add(model, "Source must be offered on request.")
    yield model, sem, epi
    sem.close()
    epi.close()
    model.close()


def test_ask_returns_python_values(parts):
    model, sem, epi = parts
    with hmst.Engine(model, semantic=sem, episodic=epi, episodic_retrieval="hybrid") as engine:
        assert not engine.has_controller and not engine.has_critic
        assert 1 <= engine.exit_layer
        r = engine.ask("Who may copy the work?", policy="episodic+semantic", max_tokens=5)
        assert isinstance(r, hmst.EngineResult)
        assert r.decisions == {"early_exit": False, "episodic": True, "semantic": True, "expert_selection": False, "verify": False}
        assert r.probabilities["semantic"] == 1.0 and r.policy == "fixed"
        assert len(r.citations) == 4 and {c["tier"] for c in r.citations} == {"semantic", "episodic"}
        assert {c["text"] for c in r.citations} >= set(FACTS)
        assert isinstance(r.token_logprobs, np.ndarray) and r.token_logprobs.dtype == np.float32
        assert len(r.tokens) == len(r.token_logprobs) <= 5
        assert r.max_tokens == 5 and r.finish_reason == ("length" if len(r.tokens) == 5 else "stop")
        assert np.all(r.token_logprobs <= 0)
        assert 0 <= r.confidence <= 1 and not r.confidence_calibrated
        assert r.cost["vectors_scanned"] == 4 and r.cost["prompt_tokens"] > 0
        assert set(r.stage_ms) == {"encode", "retrieve", "control", "generate", "verify", "total"}
        assert str(r) == r.answer


def test_policies_change_what_runs(parts):
    model, sem, epi = parts
    with hmst.Engine(model, semantic=sem, episodic=epi, episodic_retrieval="hybrid") as engine:
        none = engine.ask("Is warranty given?", policy="none", max_tokens=4)
        assert none.citations == [] and not any(none.decisions.values())
        cheap = engine.ask("Is warranty given?", policy="early_exit+expert_selection", max_tokens=4)
        per_token = lambda r: r.cost["matmul_flops"] / (r.cost["prompt_tokens"] + r.cost["generated_tokens"])
        assert per_token(cheap) < per_token(none)
        sem_only = engine.ask("Is warranty given?", policy="semantic", max_tokens=4)
        assert sem_only.citations and all(c["tier"] == "semantic" for c in sem_only.citations)
        full = engine.ask("Is warranty given?", policy="full", max_tokens=4)
        assert full.decisions["verify"] and full.cost["critic_calls"] == 0   # no critic in the fixture


def test_streaming_and_stopping(parts):
    model, sem, epi = parts
    seen = []
    with hmst.Engine(model, semantic=sem) as engine:
        r = engine.ask("Who may copy the work?", policy="semantic", max_tokens=5,
                       on_token=lambda tok, piece, lp: seen.append((tok, piece, lp)))
        assert [t for t, _, _ in seen] == list(r.tokens)
        assert np.allclose([lp for _, _, lp in seen], r.token_logprobs)
        r = engine.ask("Who may copy the work?", policy="none", max_tokens=5, on_token=lambda *a: False)
        assert len(r.tokens) <= 1
        assert r.finish_reason == ("cancelled" if len(r.tokens) == 1 else "stop")

        def boom(*a):
            raise RuntimeError("callback failed")
        with pytest.raises(RuntimeError, match="callback failed"):
            engine.ask("Who may copy the work?", policy="none", on_token=boom)


def test_errors(parts):
    model, sem, epi = parts
    engine = hmst.Engine(model, semantic=sem)
    with pytest.raises(hmst.HMSTError, match="empty"):
        engine.ask("   ")
    with pytest.raises(hmst.HMSTError, match="psychic"):
        engine.ask("Who?", policy="semantic+psychic")
    with pytest.raises(hmst.HMSTError, match="controller"):
        engine.ask("Who?", policy="controller")
    with pytest.raises(hmst.HMSTError):
        engine.ask("Who?", max_tokens=0)
    with pytest.raises(TypeError):
        engine.ask(b"bytes")
    with pytest.raises(hmst.HMSTError):
        hmst.Engine(model, k=0)
    with pytest.raises(hmst.HMSTError, match="n_ctx 4294967312"):   # not wrapped to 16
        hmst.Engine(model, n_ctx=2**32 + 16)
    with pytest.raises(TypeError, match="n_threads must be an int"):
        hmst.Engine(model, n_threads=2.5)
    with pytest.raises(hmst.HMSTError):
        hmst.Engine(model, exit_layer=99)
    with pytest.raises(hmst.HMSTError, match="episodic_retrieval"):
        hmst.Engine(model, episodic_retrieval="psychic")
    wrong = hmst.SemanticMemory(dim=model.n_embd + 4, index="Flat")
    wrong.add(np.ones((1, model.n_embd + 4), dtype=np.float32), texts=["x"])
    with pytest.raises(hmst.HMSTError, match="dimension|embed"):
        hmst.Engine(model, semantic=wrong)
    engine.close()
    with pytest.raises(hmst.HMSTError, match="closed"):
        engine.ask("Who?")


def test_owner_scopes_the_memory(parts):
    """Entries added from Python have no owner: owner="" is all of them, any other owner none of
    them (no citation, no retrieval), None every entry."""
    model, sem, epi = parts
    with hmst.Engine(model, semantic=sem, episodic=epi, episodic_retrieval="hybrid") as engine:
        everyone = engine.ask("Who may copy the work?", policy="episodic+semantic", max_tokens=3)
        assert everyone.owner is None and len(everyone.citations) == 4
        unowned = engine.ask("Who may copy the work?", policy="episodic+semantic", max_tokens=3, owner="")
        assert unowned.owner == "" and unowned.citations == everyone.citations
        assert list(unowned.tokens) == list(everyone.tokens)
        other = engine.ask("Who offers the source?", policy="episodic", max_tokens=3, owner="alice")
        assert other.owner == "alice"
        assert other.citations == []
        assert other.cost["vectors_scanned"] == 0 and other.cost["retrievals"] == 0
        # the only episodic entry, cited without the scope
        assert [c["text"] for c in engine.ask("Who offers the source?", policy="episodic", max_tokens=3).citations] == \
            ["Source must be offered on request."]
        with pytest.raises(TypeError):
            engine.ask("Who?", owner=7)
        with pytest.raises(ValueError):
            engine.ask("Who?", owner="a\0b")
