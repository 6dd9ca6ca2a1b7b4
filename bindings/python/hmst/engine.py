"""hmst.Engine: the HMST engine: per-query decisions, memory, critic, citations, confidence.

    import hmst
    with hmst.Model("ckpt/") as model, hmst.SemanticMemory.load("mem/semantic") as sem:
        with hmst.Engine(model, semantic=sem) as engine:
            r = engine.ask("What is the capital of Thokyrn?")
            r.answer, r.confidence, r.decisions, r.citations

The model's controller (controller/) and critic (critic/) are used when the checkpoint has them.
"""
import ctypes
import json

import numpy as np

from . import _lib
from .api import HMSTError, _check, _int, _Resource

DECISIONS = ("early_exit", "episodic", "semantic", "expert_selection", "verify")


class EngineResult:
    """One answer: `answer`, `model_answer`, `abstained`, `retried`, `confidence`,
    `confidence_calibrated`, `owner` (the memory scope, None: every entry), `decisions` and `probabilities` (dicts by decision name),
    `citations` (list of dicts: tier, id, score, text), `tokens` and `token_logprobs` (numpy
    arrays), `finish_reason` ("stop", "length" or "cancelled") and `max_tokens` (the answer's
    token limit: less than asked when the prompt left less room), `cost`, `stage_ms` (dicts) and
    `events` (list of str); `json` is the full record."""

    def __init__(self, record):
        self.json = record
        self.query = record["query"]
        self.owner = record.get("owner")    # the memory scope asked with; None: every entry
        self.answer = record["answer"]
        self.model_answer = record["model_answer"]
        self.abstained = record["abstained"]
        self.retried = record["retried"]
        self.confidence = record["confidence"]
        self.confidence_calibrated = record["confidence_calibrated"]
        self.policy = record["policy"]
        self.decisions = dict(record["decisions"])
        self.probabilities = dict(record["probabilities"])
        self.citations = list(record["citations"])
        self.tokens = np.asarray(record["tokens"], dtype=np.int32)
        self.token_logprobs = np.asarray(record["token_logprobs"], dtype=np.float32)
        self.finish_reason = record["finish_reason"]
        self.max_tokens = record["max_tokens"]
        self.cost = dict(record["cost"])
        self.stage_ms = dict(record["stage_ms"])
        self.events = list(record["events"])

    def __str__(self):
        return self.answer

    def __repr__(self):
        on = [k for k, v in self.decisions.items() if v]
        return (f"EngineResult(answer={self.answer!r}, confidence={self.confidence:.3f}, decisions={on}, "
                f"citations={len(self.citations)})")


class Engine(_Resource):
    """An engine over a model and memory tiers (hmst.SemanticMemory / hmst.EpisodicMemory, either
    optional). Keep the model and memories open while the engine is. Queries on one engine run one
    at a time. episodic_retrieval: how the episodic tier is searched ("lexical" by default: its
    SSM-state vectors find facts from questions far less often than BM25; "hybrid", "dense")."""
    _kind = "engine"
    _free = staticmethod(lambda h: _lib.lib.hmst_engine_free(h))

    def __init__(self, model, semantic=None, episodic=None, *, k=4, exit_layer=0, selected_experts=1,
                 confidence_threshold=0.5, retry_with_memory=True, n_ctx=0, n_threads=0, episodic_retrieval="lexical"):
        self._h = None
        if episodic_retrieval not in _lib.RETRIEVAL_MODES:
            raise HMSTError(_lib.INVALID_ARGUMENT,
                            f"unknown episodic_retrieval {episodic_retrieval!r} (expected hybrid, dense or lexical)")
        p = _lib.lib.hmst_engine_default_params()
        p.episodic_retrieval = _lib.RETRIEVAL_MODES[episodic_retrieval]
        # integer fields are range-checked by the struct (_lib._Struct)
        p.k, p.exit_layer, p.selected_experts = k, exit_layer, selected_experts
        p.confidence_threshold = float(confidence_threshold)
        p.retry_with_memory = bool(retry_with_memory)
        p.n_ctx, p.n_threads = n_ctx, n_threads
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_engine_create(model._handle(), semantic._handle() if semantic is not None else None,
                                           episodic._handle() if episodic is not None else None,
                                           ctypes.byref(p), ctypes.byref(h)))
        self._h = h
        self._keep = (model, semantic, episodic)   # the engine holds references to them

    @property
    def has_controller(self):
        return self._info()[0]

    @property
    def has_critic(self):
        return self._info()[1]

    @property
    def exit_layer(self):
        return self._info()[2]

    def _info(self):
        c, k, e = ctypes.c_bool(), ctypes.c_bool(), ctypes.c_int32()
        _check(_lib.lib.hmst_engine_info(self._handle(), ctypes.byref(c), ctypes.byref(k), ctypes.byref(e)))
        return c.value, k.value, e.value

    def ask(self, query, *, policy="auto", max_tokens=16, temperature=0.0, seed=0, on_token=None, owner=None):
        """Answers query (str). policy: "auto" (the controller, else full), "controller", "full",
        "none", or decisions joined by "+" ("episodic+semantic+verify"). on_token(token_id, piece
        bytes, logprob) is called for every answer token; return False to stop. owner (str): only
        that owner's memory entries are retrieved, weigh in the decisions and are cited ("" : the
        entries added without an owner, i.e. every entry added from Python); None (the default):
        every entry. Raises HMSTError."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        if owner is not None and not isinstance(owner, str):
            raise TypeError(f"owner must be a str or None, not {type(owner).__name__}")
        if owner is not None and "\0" in owner:
            raise ValueError("owner must not contain a NUL character")
        p = _lib.lib.hmst_engine_query_default_params()
        p.owner = owner.encode() if owner is not None else None
        p.policy = str(policy).encode()
        p.max_tokens = _int("max_tokens", max_tokens, -2**31)
        p.temperature = float(temperature)
        p.seed = _int("seed", seed, 0, 2**64 - 1)
        holder = {}
        errors = []

        def result_cb(_res, js, n, _ud):
            holder["json"] = ctypes.string_at(js, n).decode("utf-8", "replace")
        rcb = _lib.ENGINE_RESULT_CALLBACK(result_cb)
        p.on_result = rcb
        tcb = None
        if on_token is not None:
            def token_cb(tok, piece, n, lp, _ud):
                try:
                    return on_token(int(tok), ctypes.string_at(piece, n), float(lp)) is not False
                except Exception as e:  # never let an exception cross the C boundary
                    errors.append(e)
                    return False
            tcb = _lib.ENGINE_TOKEN_CALLBACK(token_cb)
            p.on_token = tcb
        _check(_lib.lib.hmst_engine_ask(self._handle(), query.encode(), ctypes.byref(p), None))
        if errors:
            raise errors[0]
        del tcb, rcb
        return EngineResult(json.loads(holder["json"]))
