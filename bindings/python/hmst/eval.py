"""hmst.evaluate: lm-evaluation-harness-style tasks on local files, under memory conditions.

    import hmst
    with hmst.Model("ckpt/") as model:
        report = hmst.evaluate(model, ["facts.json"], memory="mem/", conditions=("off", "on", "oracle", "deleted"))
        report["tasks"]["facts"]["conditions"]["on"]["answer_nll"]   # {"value", "ci95": [lo, hi], "n"}

A task is a JSON description {"name", "output_type", "data": "items.jsonl", "until", "max_gen_tokens"}
with JSONL items {"id", "prompt", "target", "choices", "gold", "memory"} ("text" for
loglikelihood_rolling). The report layout and the metrics are documented with hmst_eval_run in hmst.h.
"""
import ctypes
import json
import os
import tempfile

from . import _lib
from .api import HMSTError, _check, _int

CONDITIONS = {"off": 1, "on": 2, "oracle": 4, "deleted": 8}   # enum hmst_eval_condition


def evaluate(model, tasks, memory=None, conditions=("off",), k=4, limit=0, seed=0, bootstrap=1000, n_ctx=0,
             output=None, items_output=None, retrieval="hybrid", dense_weight=None, lexical_weight=None,
             min_coverage=None):
    """Runs the task files on model (an hmst.Model) and returns the report as a dict.

    tasks: a path or a list of paths to task descriptions. memory: a memory directory for the
    "on" and "deleted" conditions (only read). conditions: names among off, on, oracle, deleted,
    or one comma-separated string. retrieval: how "on" and "deleted" retrieve: "hybrid" (BM25 and
    vectors fused by reciprocal rank), "dense" or "lexical"; dense_weight / lexical_weight: the
    weight of each part's rank in that fusion (None: the library's, 1); min_coverage: drop retrieved
    entries holding less than that share of the question's idf-weighted terms (None: the
    library's, 0, keeps all). output / items_output:
    also write the JSON report / per-item JSONL there. Raises HMSTError naming the file, line and field of a bad task.
    """
    if not hasattr(model, "_handle"):
        raise TypeError(f"model must be an hmst.Model, not {type(model).__name__}")
    paths = [tasks] if isinstance(tasks, (str, os.PathLike)) else list(tasks)
    if not paths:
        raise HMSTError(_lib.INVALID_ARGUMENT, "no task files given")
    names = conditions.split(",") if isinstance(conditions, str) else list(conditions)
    mask = 0
    for c in names:
        c = str(c).strip()
        if c not in CONDITIONS:
            raise HMSTError(_lib.INVALID_ARGUMENT, f"unknown memory condition {c!r} (expected off, on, oracle or deleted)")
        mask |= CONDITIONS[c]
    p = _lib.lib.hmst_eval_default_params()
    encoded = [os.fsencode(t) for t in paths]
    arr = (ctypes.c_char_p * len(encoded))(*encoded)
    p.task_paths = arr
    p.n_tasks = len(encoded)
    p.memory_dir = os.fsencode(memory) if memory is not None else None
    p.conditions = mask
    p.k = _int("k", k, 1)
    p.limit = _int("limit", limit, 0)
    p.seed = _int("seed", seed, 0, 2**64 - 1)
    p.bootstrap_resamples = _int("bootstrap", bootstrap, 1)
    p.n_ctx = _int("n_ctx", n_ctx, 0)
    p.items_path = os.fsencode(items_output) if items_output is not None else None
    modes = _lib.RETRIEVAL_MODES
    if retrieval not in modes:
        raise HMSTError(_lib.INVALID_ARGUMENT, f"unknown retrieval mode {retrieval!r} (expected hybrid, dense or lexical)")
    p.retrieval_mode = modes[retrieval]
    if dense_weight is not None:
        p.dense_weight = float(dense_weight)
    if lexical_weight is not None:
        p.lexical_weight = float(lexical_weight)
    if min_coverage is not None:
        p.min_coverage = float(min_coverage)
    with tempfile.TemporaryDirectory(prefix="hmst-eval-") as tmp:
        # the report also goes to a file, so a buffer that turns out too small costs no rerun
        report_path = os.fspath(output) if output is not None else os.path.join(tmp, "report.json")
        p.report_path = os.fsencode(report_path)
        buf = ctypes.create_string_buffer(1 << 20)
        n = ctypes.c_size_t(0)
        rc = _lib.lib.hmst_eval_run(model._handle(), ctypes.byref(p), buf, len(buf), ctypes.byref(n))
        if rc == _lib.BUFFER_TOO_SMALL:
            with open(report_path, "r", encoding="utf-8") as f:
                return json.load(f)
        _check(rc)
        return json.loads(buf.value.decode("utf-8"))
