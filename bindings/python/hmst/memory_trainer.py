"""hmst.MemoryTrainer / hmst.train_memory: Stage 2 memory fine-tuning of a pre-trained checkpoint.

The checkpoint learns to answer from memories laid out as `<mem>fact</mem>...<q>question<a> answer</a>`
(the markers are added to its tokenizer), from facts_dir/facts.jsonl and train.jsonl, while a share
lm_fraction of the steps stays plain language modelling on train_data.
"""
import ctypes
import math

from . import _lib
from .api import _check, _path, _Resource
from .data_parallel import _params_pointer, _rank

_SETTINGS = ("oracle", "on", "off", "deleted")


def _eval_dict(e):
    return {"questions": e.n_questions,
            "nll": {s: getattr(e, "nll_" + s) for s in _SETTINGS},
            "exact_match": {s: getattr(e, "exact_match_" + s) for s in _SETTINGS}}


class MemoryTrainer(_Resource):
    """Stage 2 on a checkpoint; final/, metrics.jsonl and loss.svg go to output_dir.

        with hmst.MemoryTrainer("base/final", "facts", "stage2", train_data="data/train") as t:
            t.run(progress=lambda p: print(p["step"], p["loss"]))
            print(t.evaluate()["exact_match"]["on"])
    """
    _kind = "memory trainer"
    _free = staticmethod(lambda h: _lib.lib.hmst_memory_trainer_free(h))

    def __init__(self, checkpoint, facts_dir, output_dir, *, train_data=None, val_data=None, resume_from=None,
                 steps=1000, batch_size=8, seq_len=128, memory_seq_len=96, grad_accum_steps=1, k=4, eval_every=0, eval_questions=200,
                 learning_rate=3e-4, weight_decay=0.1, grad_clip=1.0, lm_fraction=None, seed=0,
                 mixed_precision=False, gradient_checkpointing=False, use_8bit_optimizer=False, data_parallel=None,
                 copy_head_key_size=0, copy_head_learning_rate=0.0, copy_gate_target_weight=None,
                 episodic_soft_tokens=0, episodic_fraction=0.25, episodic_learning_rate=0.0,
                 episodic_soft_input=None, episodic_copy=None, episodic_pretrain_steps=None, episodic_readout=None,
                 condition_weights=None, questions_per_example=None, hard_distractors=None, retrieved_distractors=None,
                 retrieved_by=None, retrieved_lexical_weight=None, distractor_distillation=None,
                 distilled_gate_target_weight=None, copy_gate_open_weight=None, copy_gate_agreement_rank=0,
                 copy_gate_lexical_overlap=False, copy_gate_missing_terms=False, copy_gate_lexical_scale=None,
                 force=False):
        """force: start over in an output_dir that holds an earlier run (its metrics.jsonl,
        loss.svg, final/, best_model/ and checkpoint-epoch-N/ are removed first, never this run's
        inputs); without it such a directory raises hmst.HMSTError unless resume_from continues
        that run."""
        self._h = None
        self._keep = []
        p = _lib.lib.hmst_memory_trainer_default_params()
        for name, value in (("checkpoint", checkpoint), ("facts_dir", facts_dir), ("output_dir", output_dir),
                            ("train_data", train_data), ("val_data", val_data), ("resume_from", resume_from)):
            if value is not None:
                b = _path(value, name)
                self._keep.append(b)
                setattr(p, name, b)
        for name, value in (("steps", steps), ("batch_size", batch_size), ("seq_len", seq_len), ("memory_seq_len", memory_seq_len),
                            ("grad_accum_steps", grad_accum_steps), ("k", k), ("eval_every", eval_every),
                            ("eval_questions", eval_questions), ("copy_head_key_size", copy_head_key_size),
                            ("episodic_soft_tokens", episodic_soft_tokens), ("copy_gate_agreement_rank", copy_gate_agreement_rank)):
            if not isinstance(value, int) or not -2**31 <= value < 2**31:
                raise TypeError(f"{name} must be an int32, not {value!r}")
            setattr(p, name, value)
        # without pre-training data every step is a memory step
        if lm_fraction is None:
            lm_fraction = 0.5 if train_data is not None else 0.0
        p.learning_rate, p.weight_decay, p.grad_clip = float(learning_rate), float(weight_decay), float(grad_clip)
        p.copy_head_learning_rate = float(copy_head_learning_rate)
        if copy_gate_target_weight is not None:   # None keeps the library's default
            p.copy_gate_target_weight = float(copy_gate_target_weight)
        p.episodic_fraction = float(episodic_fraction)
        p.episodic_learning_rate = float(episodic_learning_rate)
        p.lm_fraction = float(lm_fraction)
        # the soft tokens' newer options: None keeps the library's default
        if episodic_soft_input is not None:
            inputs = {"state_readout": 0, "pooled_unit_key": 1}
            if episodic_soft_input not in inputs:
                raise ValueError(f"episodic_soft_input {episodic_soft_input!r}: expected 'state_readout' or 'pooled_unit_key'")
            p.episodic_soft_input = inputs[episodic_soft_input]
        if episodic_copy is not None:
            p.episodic_copy = bool(episodic_copy)
        if episodic_pretrain_steps is not None:
            if not isinstance(episodic_pretrain_steps, int) or not 0 <= episodic_pretrain_steps < 2**31:
                raise TypeError(f"episodic_pretrain_steps must be a non-negative int32, not {episodic_pretrain_steps!r}")
            p.episodic_pretrain_steps = episodic_pretrain_steps
        if episodic_readout is not None:
            p.episodic_readout = float(episodic_readout)
        # the curriculum (None keeps the library's default): condition_weights = (gold, distractors only, no memory)
        if condition_weights is not None:
            w = tuple(float(x) for x in condition_weights)
            if len(w) != 3:
                raise ValueError(f"condition_weights takes three numbers (gold, distractors only, no memory), not {condition_weights!r}")
            p.gold_weight, p.distractors_only_weight, p.no_memory_weight = w
        if questions_per_example is not None:
            if not isinstance(questions_per_example, int) or not 1 <= questions_per_example < 2**31:
                raise TypeError(f"questions_per_example must be a positive int32, not {questions_per_example!r}")
            p.questions_per_example = questions_per_example
        if hard_distractors is not None:
            p.hard_distractors = float(hard_distractors)
        if retrieved_distractors is not None:
            p.retrieved_distractors = float(retrieved_distractors)
        if retrieved_by is not None:
            if retrieved_by not in _lib.RETRIEVAL_MODES:
                raise ValueError(f"retrieved_by {retrieved_by!r}: expected 'lexical', 'dense' or 'hybrid'")
            p.retrieved_by = _lib.RETRIEVAL_MODES[retrieved_by]
        if retrieved_lexical_weight is not None:   # None keeps the library's default
            p.retrieved_lexical_weight = float(retrieved_lexical_weight)
        if distractor_distillation is not None:   # None keeps the library's default
            p.distractor_distillation = float(distractor_distillation)
        if distilled_gate_target_weight is not None:   # None keeps the library's default
            p.distilled_gate_target_weight = float(distilled_gate_target_weight)
        if copy_gate_open_weight is not None:   # None keeps the library's default
            p.copy_gate_open_weight = float(copy_gate_open_weight)
        p.copy_gate_lexical_overlap = bool(copy_gate_lexical_overlap)
        p.copy_gate_missing_terms = bool(copy_gate_missing_terms)
        if copy_gate_lexical_scale is not None:   # None keeps the library's default
            p.copy_gate_lexical_scale = float(copy_gate_lexical_scale)
        p.seed = int(seed)
        p.force = bool(force)
        p.mixed_precision = bool(mixed_precision)
        p.gradient_checkpointing = bool(gradient_checkpointing)
        p.use_8bit_optimizer = bool(use_8bit_optimizer)
        # None: one process; "mpi" or hmst.DataParallel: a rank of an MPI job (every rank makes every call)
        p.data_parallel = _params_pointer(data_parallel, self._keep)
        state = self._state = {"progress": None, "errors": []}

        def trampoline(ptr, _ud):
            fn = state["progress"]
            if fn is None:
                return True
            s = ptr.contents
            info = {"step": s.step, "total_steps": s.total_steps, "kind": "lm" if s.lm_step else "memory",
                    "loss": s.loss, "learning_rate": s.learning_rate, "tokens_per_second": s.tokens_per_second,
                    "eta_seconds": s.eta_seconds, "eval": _eval_dict(s.eval) if s.evaluated else None,
                    "val_loss": None if math.isnan(s.val_loss) else s.val_loss,
                    "val_bits_per_byte": None if math.isnan(s.val_bits_per_byte) else s.val_bits_per_byte}
            try:
                return fn(info) is not False
            except BaseException as e:  # never unwind into C; re-raised after the call
                state["errors"].append(e)
                return False

        self._trampoline = _lib.MEMORY_TRAIN_PROGRESS_CALLBACK(trampoline)
        p.progress = self._trampoline
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_memory_trainer_create(ctypes.byref(p), ctypes.byref(h)))
        self._h = h

    def step(self):
        """One optimizer step; returns (loss, kind) with kind "memory" or "lm"."""
        loss, lm = ctypes.c_double(), ctypes.c_bool()
        _check(_lib.lib.hmst_memory_trainer_step(self._handle(), ctypes.byref(loss), ctypes.byref(lm)))
        return loss.value, "lm" if lm.value else "memory"

    def evaluate(self):
        """Held-out questions: {"questions", "nll": {setting: nats per answer token},
        "exact_match": {setting: fraction}} for the settings oracle, on, off, deleted."""
        e = _lib.MemoryEval()
        e.struct_size = ctypes.sizeof(e)
        _check(_lib.lib.hmst_memory_trainer_evaluate(self._handle(), ctypes.byref(e)))
        return _eval_dict(e)

    def run(self, progress=None):
        """Runs the remaining steps (then saves output_dir/final). progress(dict) returning False
        stops early. Returns the number of steps done in total."""
        self._state["progress"], self._state["errors"] = progress, []
        steps = ctypes.c_int32()
        try:
            rc = _lib.lib.hmst_memory_trainer_run(self._handle(), ctypes.byref(steps))
        finally:
            self._state["progress"] = None
        if self._state["errors"]:
            raise self._state["errors"][0]
        _check(rc)
        return steps.value

    @property
    def rank(self):
        """This process's rank (0 for one process)."""
        return _rank(_lib.lib.hmst_memory_trainer_get_rank, self._handle())[0]

    @property
    def ranks(self):
        """Processes training together (1 for one process)."""
        return _rank(_lib.lib.hmst_memory_trainer_get_rank, self._handle())[1]

    def save(self, directory):
        """A loadable checkpoint (with the memory markers) plus the state to resume from."""
        _check(_lib.lib.hmst_memory_trainer_save(self._handle(), _path(directory, "directory")))


def train_memory(checkpoint, facts_dir, output_dir, *, progress=None, **options):
    """Runs Stage 2 to the end (see MemoryTrainer for the options); returns the final evaluation."""
    with MemoryTrainer(checkpoint, facts_dir, output_dir, **options) as t:
        t.run(progress=progress)
        return t.evaluate()
