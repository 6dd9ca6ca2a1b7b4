"""hmst.MemoryTrainer / hmst.train_memory: steps (memory and LM), evaluation, progress that stops,
resume, a checkpoint with the memory markers, errors."""
import json
import os

import pytest

import hmst

BUILD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "fixtures")
DATA = os.path.join(BUILD, "data")
CKPT = os.path.join(BUILD, "micro")
needs_fixture = pytest.mark.skipif(not os.path.exists(os.path.join(CKPT, "config.json")), reason="run `make` fixtures first")

NAMES = ["Kalo Mirtas", "Venor Dasil", "Brani Felgor", "Zanpe Thoqui", "Lomi Kaven", "Silbra Nuri", "Gorfel Tasri", "Quiza Pelo"]
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Rome", "Tokyo"]
SPLITS = ["train_known", "train_memory_only", "heldout", "distractor"]


def write_facts(d):
    d.mkdir()
    with open(d / "facts.jsonl", "w") as f, open(d / "train.jsonl", "w") as q:
        for i, (n, c) in enumerate(zip(NAMES, CITIES)):
            split = SPLITS[i % 4]
            f.write(json.dumps({"id": f"f{i}", "entity": n, "relation": "city", "value": c,
                                "text": f"{n} lives in {c}.", "split": split, "source": "test"}) + "\n")
            if split != "distractor":
                q.write(json.dumps({"id": f"q{i}", "fact_id": f"f{i}", "split": split, "relation": "city",
                                    "template": "t", "question": f"Where does {n} live?", "answer": c}) + "\n")
    return d


@needs_fixture
def test_steps_eval_progress_resume(tmp_path):
    facts = write_facts(tmp_path / "facts")
    out = tmp_path / "run"
    opts = dict(train_data=DATA, val_data=DATA, steps=4, batch_size=2, seq_len=48, k=2, eval_questions=2,
                learning_rate=1e-3, seed=3)
    with hmst.MemoryTrainer(CKPT, facts, out, **opts) as t:
        loss, kind = t.step()
        assert kind == "memory" and 0 < loss < 30
        assert t.step()[1] == "lm"
        e = t.evaluate()
        assert e["questions"] == 2 and set(e["nll"]) == {"oracle", "on", "off", "deleted"}
        assert all(0 <= v <= 1 for v in e["exact_match"].values())
        seen = []
        assert t.run(progress=lambda p: seen.append(p) or p["step"] < 3) == 3
        assert [p["step"] for p in seen] == [3] and seen[0]["kind"] == "memory"
        t.save(tmp_path / "at3")
        with pytest.raises(ZeroDivisionError):
            t.run(progress=lambda p: 1 / 0)
    with hmst.MemoryTrainer(CKPT, facts, tmp_path / "again", resume_from=tmp_path / "at3", **opts) as t:
        done = []
        assert t.run(progress=lambda p: done.append(p) or True) == 4
        assert done[-1]["eval"] is not None and done[-1]["val_bits_per_byte"] > 0
    with hmst.Model(out / "final") as m:
        assert len(m.tokenize("<mem></mem><q><a></a>")) == 5
    lines = [json.loads(l) for l in (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 4 and "answer_nll_on" in lines[-1]


@needs_fixture
def test_train_memory_and_errors(tmp_path):
    facts = write_facts(tmp_path / "facts")
    e = hmst.train_memory(CKPT, facts, tmp_path / "run", steps=2, batch_size=2, seq_len=48, k=2, eval_questions=1)
    assert e["questions"] == 1 and e["nll"]["on"] > 0
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", lm_fraction=0.5)
    assert "train_data" in err.value.message
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, tmp_path / "nofacts", tmp_path / "x")
    assert "facts.jsonl" in err.value.message
    with pytest.raises(TypeError):
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", steps=1.5)


def test_copy_head_is_trained_saved_and_loaded(tmp_path):
    facts = write_facts(tmp_path / "facts")
    out = tmp_path / "run"
    hmst.train_memory(CKPT, facts, out, steps=2, batch_size=2, seq_len=48, k=2, eval_questions=1,
                      copy_head_key_size=8, copy_head_learning_rate=3e-3, copy_gate_agreement_rank=4,
                      copy_gate_lexical_overlap=True, copy_gate_missing_terms=True, copy_gate_lexical_scale=4)
    desc = json.loads((out / "final" / "copy_head.json").read_text())
    assert desc["key_size"] == 8 and desc["format"] == "hmst-copy-head" and desc["agreement_size"] == 4
    assert desc["overlap_vocabulary"] > 0 and desc["question_marker_id"] != desc["answer_marker_id"]
    assert desc["missing_terms"] is True and desc["overlap_scale"] == 4
    with hmst.Model(out / "final") as m:  # a model with a copy head loads and generates
        info = m.info
        assert info["copy_head_key_size"] == 8 and info["copy_head_agreement_rank"] == 4
        assert isinstance(m.generate("<mem>a</mem><q>b<a>", max_tokens=2, seed=1).text, str)
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "y", copy_head_learning_rate=-1.0)
    assert "copy_head_learning_rate" in err.value.message
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "y", copy_head_key_size=8, copy_gate_target_weight=float("nan"))
    assert "copy_gate_target_weight" in err.value.message
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "y", copy_head_key_size=8, copy_gate_agreement_rank=-1)
    assert "copy_gate_agreement_rank" in err.value.message


def test_episodic_soft_tokens_are_trained_saved_and_loaded(tmp_path):
    facts = write_facts(tmp_path / "facts")
    out = tmp_path / "run"
    hmst.train_memory(CKPT, facts, out, steps=2, batch_size=2, seq_len=48, k=2, eval_questions=1,
                      episodic_soft_tokens=1, episodic_fraction=1.0, episodic_learning_rate=3e-3, episodic_pretrain_steps=3)
    desc = json.loads((out / "final" / "episodic_soft_tokens.json").read_text())
    assert desc["tokens"] == 1 and desc["format"] == "hmst-episodic-soft-tokens" and desc["input"] == "state_readout"
    assert desc["embedding_scale"] > 0
    # the first version's input, chosen by name; read-out pre-training and loss from Python
    old = tmp_path / "pooled"
    hmst.train_memory(CKPT, facts, old, steps=1, batch_size=2, seq_len=48, k=2, eval_questions=1,
                      episodic_soft_tokens=2, episodic_fraction=1.0, episodic_soft_input="pooled_unit_key",
                      episodic_pretrain_steps=2, episodic_readout=0.5, episodic_copy=False)
    desc = json.loads((old / "final" / "episodic_soft_tokens.json").read_text())
    assert desc["input"] == "pooled_unit_key" and "embedding_scale" not in desc and "copy_sources" not in desc
    with pytest.raises(ValueError):
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "y", episodic_soft_tokens=1, episodic_soft_input="whole_state")
    with hmst.Model(out / "final") as m:  # loads with its soft tokens
        assert isinstance(m.generate("<q>b<a>", max_tokens=2, seed=1).text, str)
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "y", episodic_soft_tokens=1, episodic_fraction=2.0)
    assert "episodic_fraction" in err.value.message
    with pytest.raises(TypeError):
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "y", episodic_soft_tokens=0.5)


@needs_fixture
def test_curriculum_options(tmp_path):
    facts = write_facts(tmp_path / "facts")
    e = hmst.train_memory(CKPT, facts, tmp_path / "run", steps=2, batch_size=2, seq_len=48, k=2, eval_questions=1,
                          condition_weights=(0.6, 0.3, 0.1), questions_per_example=2, hard_distractors=0.5,
                          retrieved_distractors=1.0, retrieved_by="lexical", distractor_distillation=0.5,
                          distilled_gate_target_weight=2.0, copy_gate_open_weight=1.0)
    assert e["questions"] == 1
    # dense and hybrid blocks need the checkpoint's retrieval projection (hmst train-retriever)
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", retrieved_distractors=0.5, retrieved_by="hybrid")
    assert "retrieval projection" in err.value.message
    with pytest.raises(ValueError):
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", retrieved_by="bm25")
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", retrieved_lexical_weight=-2.0)
    assert "retrieved_lexical_weight" in err.value.message
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", distractor_distillation=2.0)
    assert "distractor_distillation" in err.value.message
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", distilled_gate_target_weight=-1.0)
    assert "distilled_gate_target_weight" in err.value.message
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", copy_gate_open_weight=float("nan"))
    assert "copy_gate_open_weight" in err.value.message
    with pytest.raises(ValueError):
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", condition_weights=(1, 0))
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", questions_per_example=3, k=2)
    assert "questions per example" in err.value.message
    with pytest.raises(hmst.HMSTError) as err:
        hmst.MemoryTrainer(CKPT, facts, tmp_path / "x", hard_distractors=-0.5)
    assert "hard_distractors" in err.value.message
