"""hmst.evaluate over the fixture micro checkpoint: the report dict, conditions, per-item output and errors."""
import json
import os

import pytest

import hmst

FIXTURE = os.environ.get("HMST_FIXTURE", os.path.join(os.path.dirname(__file__), "../../../build/fixtures/micro"))


@pytest.fixture(scope="module")
def model():
    with hmst.Model(FIXTURE) as m:
        yield m


def write_task(folder, name, output_type, items, **extra):
    with open(folder / f"{name}.jsonl", "w") as f:
        for it in items:
            f.write(json.dumps(it) + "\n")
    desc = {"name": name, "output_type": output_type, "data": f"{name}.jsonl", **extra}
    (folder / f"{name}.json").write_text(json.dumps(desc))
    return str(folder / f"{name}.json")


def test_evaluate_report_and_items(model, tmp_path):
    ll = write_task(tmp_path, "ll", "loglikelihood", [
        {"id": "a", "prompt": "Who may copy the work?", "target": " the licensee", "memory": ["The licensee may copy the work."]},
        {"id": "b", "prompt": "Is warranty given?", "target": " no", "memory": ["Warranty is disclaimed."], "topic": "law"},
    ])
    roll = write_task(tmp_path, "roll", "loglikelihood_rolling", [{"text": "The licensee may copy the work."}])
    items = tmp_path / "items.jsonl"
    r = hmst.evaluate(model, [ll, roll], conditions="off,oracle", bootstrap=50, items_output=str(items),
                      output=str(tmp_path / "report.json"))
    assert r["format"] == "hmst-eval-report"
    assert r["settings"]["conditions"] == ["off", "oracle"]
    off = r["tasks"]["ll"]["conditions"]["off"]
    assert set(off) == {"acc", "answer_nll", "perplexity"}
    assert off["answer_nll"]["n"] == 2 and off["answer_nll"]["value"] > 0
    lo, hi = off["answer_nll"]["ci95"]
    assert lo <= off["answer_nll"]["value"] <= hi
    bpb = r["tasks"]["roll"]["conditions"]["off"]["bits_per_byte"]["value"]
    assert bpb > 0
    # the file report is the returned one
    assert json.loads((tmp_path / "report.json").read_text())["tasks"] == r["tasks"]
    lines = [json.loads(x) for x in items.read_text().splitlines()]
    assert len(lines) == 6  # (2 + 1) items x 2 conditions
    oracle_b = [x for x in lines if x["task"] == "ll" and x["id"] == "b" and x["condition"] == "oracle"][0]
    assert oracle_b["memories"] == ["Warranty is disclaimed."]
    assert oracle_b["metadata"] == {"topic": "law"}
    # limit keeps the first items
    assert hmst.evaluate(model, ll, limit=1, bootstrap=10)["tasks"]["ll"]["n_items"] == 1


def test_evaluate_errors(model, tmp_path):
    with pytest.raises(hmst.HMSTError) as e:
        hmst.evaluate(model, str(tmp_path / "nope.json"))
    assert e.value.status_name == "NOT_FOUND" and "nope.json" in e.value.message
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p", "target": " t"}\n{"prompt": "p"}\n')
    (tmp_path / "bad.json").write_text('{"name": "bad", "output_type": "loglikelihood", "data": "bad.jsonl"}')
    with pytest.raises(hmst.HMSTError) as e:
        hmst.evaluate(model, str(tmp_path / "bad.json"))
    assert e.value.status_name == "BAD_FORMAT" and "line 2" in e.value.message and '"target"' in e.value.message
    good = write_task(tmp_path, "good", "loglikelihood", [{"prompt": "p", "target": " t"}])
    with pytest.raises(hmst.HMSTError, match="maybe"):
        hmst.evaluate(model, good, conditions=("off", "maybe"))
    with pytest.raises(hmst.HMSTError, match="memory directory"):
        hmst.evaluate(model, good, conditions="on")
    with pytest.raises(hmst.HMSTError):
        hmst.evaluate(model, good, k=0)
    with pytest.raises(hmst.HMSTError, match="lexical_weight"):
        hmst.evaluate(model, good, lexical_weight=-1.0)
    with pytest.raises(hmst.HMSTError, match="dense_weight"):
        hmst.evaluate(model, good, dense_weight=float("nan"))
    with pytest.raises(hmst.HMSTError, match="min_coverage"):
        hmst.evaluate(model, good, min_coverage=-0.5)
    with pytest.raises(hmst.HMSTError):
        hmst.evaluate(model, [])
