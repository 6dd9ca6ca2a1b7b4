"""hmst.Trainer: steps, evaluation, a progress callback that stops, checkpoints that load."""
import json
import os

import pytest

import hmst

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "fixtures", "data")


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE, "metadata.json")), reason="run `make` fixtures first")
def test_train_steps_progress_and_checkpoints(tmp_path):
    out = tmp_path / "run"
    with hmst.Trainer(FIXTURE, out, val_data=FIXTURE, seq_len=32, batch_size=2, steps_per_epoch=6, eval_every=2,
                      eval_windows=2, learning_rate=1e-3) as t:
        first = t.step()
        assert 1 < first < 20
        assert 1 < t.evaluate() < 20
        seen = []
        steps = t.run(progress=lambda p: seen.append(p) or p["step"] < 4)
        assert steps == 4 and [p["step"] for p in seen] == [2, 3, 4]
        assert seen[0]["val_loss"] is not None and seen[1]["val_loss"] is None
        with pytest.raises(ZeroDivisionError):
            t.run(progress=lambda p: 1 / 0)
    with hmst.Model(out / "final") as m:
        assert m.info["shape"]["V"] == 1000
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["step"] == 2
    with pytest.raises(hmst.HMSTError) as e:
        hmst.Trainer(FIXTURE, out, batch_size=0)
    assert "batch_size" in e.value.message
    with pytest.raises(hmst.HMSTError):
        hmst.Trainer(tmp_path / "nothing", out)
    # a fresh run into that directory is refused (it appended to metrics.jsonl); force starts over
    with pytest.raises(hmst.HMSTError, match="holds an earlier run .*metrics.jsonl.*force=True") as e:
        hmst.Trainer(FIXTURE, out, seq_len=32)
    assert e.value.status_name == "INVALID_ARGUMENT" and (out / "final").is_dir()
    with hmst.Trainer(FIXTURE, out, seq_len=32, batch_size=2, steps_per_epoch=1, force=True) as t:
        assert not (out / "metrics.jsonl").exists() and not (out / "final").exists()
        t.run()
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    with pytest.raises(hmst.HMSTError, match="params->force would remove .*input"):   # never the run's own input
        hmst.Trainer(FIXTURE, out, init_from=out / "final", seq_len=32, force=True)


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE, "metadata.json")), reason="run `make` fixtures first")
def test_init_from_trains_a_checkpoint_further_and_checks_its_tokenizer(tmp_path):
    """init_from starts from a checkpoint's weights; data made by another tokenizer (here the
    same size, two ids swapped) is refused before anything is written."""
    micro = os.path.join(FIXTURE, "..", "micro")
    with hmst.Trainer(FIXTURE, tmp_path / "fresh", val_data=FIXTURE, seq_len=32, batch_size=2, steps_per_epoch=1, seed=1) as t:
        fresh_loss = t.evaluate()
    with hmst.Trainer(FIXTURE, tmp_path / "run", val_data=FIXTURE, init_from=micro, seq_len=32, batch_size=2, steps_per_epoch=2) as t:
        assert t.evaluate() != fresh_loss   # the checkpoint's weights, not a fresh model of the default preset
        t.run()
    with hmst.Model(tmp_path / "run" / "final") as m, hmst.Model(micro) as base:
        assert m.info["shape"] == base.info["shape"]
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "model.safetensors"):
        (other / name).write_bytes(open(os.path.join(micro, name), "rb").read())
    tok = json.load(open(os.path.join(micro, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    a, b = [k for k, v in vocab.items() if v in (300, 301)]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(hmst.HMSTError, match="not the one of the checkpoint") as e:
        hmst.Trainer(FIXTURE, tmp_path / "refused", init_from=other, seq_len=32)
    assert e.value.status_name == "INVALID_ARGUMENT" and not (tmp_path / "refused").exists()


def test_memory_and_precision_options(tmp_path):
    """Mixed precision, gradient checkpointing and the 8-bit optimizer train, save their state
    and resume only with the optimizer they were saved with."""
    out = tmp_path / "run"
    opts = dict(seq_len=32, batch_size=2, steps_per_epoch=4, learning_rate=1e-3, mixed_precision=True,
                gradient_checkpointing=True, use_8bit_optimizer=True)
    with hmst.Trainer(FIXTURE, out, **opts) as t:
        losses = [t.step() for _ in range(3)]
        assert all(1 < x < 20 for x in losses)
        t.save(out / "mid")
    state = (out / "mid" / "trainer_state.json").read_text()
    assert '"adamw8bit"' in state
    with hmst.Trainer(FIXTURE, tmp_path / "again", resume_from=out / "mid", **opts) as t:
        assert 1 < t.step() < 20
    opts["use_8bit_optimizer"] = False
    with pytest.raises(hmst.HMSTError, match="adamw8bit"):
        hmst.Trainer(FIXTURE, tmp_path / "other", resume_from=out / "mid", **opts)


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE, "metadata.json")), reason="run `make` fixtures first")
def test_integer_options_are_range_checked(tmp_path):
    with pytest.raises(hmst.HMSTError, match="batch_size 4294967304 must be in"):   # not wrapped to 8
        hmst.Trainer(FIXTURE, tmp_path / "run", batch_size=2**32 + 8)
    with pytest.raises(hmst.HMSTError, match="seed -1 must be in 0"):
        hmst.Trainer(FIXTURE, tmp_path / "run", seed=-1)
    with pytest.raises(TypeError, match="seq_len must be an int"):
        hmst.Trainer(FIXTURE, tmp_path / "run", seq_len=32.0)
    assert not (tmp_path / "run").exists()


def test_time_budget(tmp_path):
    """time_budget trains for that many seconds whatever the epochs say, the rate decays with
    the budget spent, and the run ends with an evaluation; bad values raise."""
    seen = []
    with hmst.Trainer(FIXTURE, tmp_path / "run", val_data=FIXTURE, seq_len=32, batch_size=2, steps_per_epoch=2,
                      eval_windows=2, learning_rate=1e-3, min_learning_rate=0.0, warmup_fraction=0.1,
                      time_budget=2.0) as t:   # 2 s: several steps even on a loaded machine
        steps = t.run(progress=seen.append)
    assert steps > 2 and len(seen) == steps
    assert seen[-1]["val_loss"] is not None
    # the peak is reached at the end of the warmup, up to the share of the budget one step takes
    # (the rate comes back as a float32: 1e-3 itself reads 1.00000005e-3)
    assert 0.5e-3 < max(p["learning_rate"] for p in seen) <= 1e-3 * (1 + 1e-6)
    assert seen[-1]["learning_rate"] < 1e-4
    state = json.loads((tmp_path / "run" / "final" / "trainer_state.json").read_text())
    assert state["trained_seconds"] >= 2.0
    for bad in (dict(time_budget=-1.0), dict(warmup_fraction=1.0), dict(min_learning_rate=1.0)):
        with pytest.raises(hmst.HMSTError):
            hmst.Trainer(FIXTURE, tmp_path / "bad", **bad)
