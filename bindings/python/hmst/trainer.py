"""hmst.Trainer: pre-training on a token dataset (made by `hmst preprocess`)."""
import ctypes
import math

from . import _lib
from .api import _check, _path, _Resource
from .data_parallel import _params_pointer, _rank


class Trainer(_Resource):
    """Pre-trains a model; checkpoints and metrics.jsonl go to output_dir.

        with hmst.Trainer("data/train", "runs/a", val_data="data/val", steps_per_epoch=100) as t:
            t.run(progress=lambda p: print(p["step"], p["loss"]))
    """
    _kind = "trainer"
    _free = staticmethod(lambda h: _lib.lib.hmst_trainer_free(h))

    def __init__(self, train_data, output_dir, *, val_data=None, model_size=None, init_from=None,
                 resume_from=None, epochs=None, batch_size=None, seq_len=None, steps_per_epoch=None,
                 grad_accum_steps=None, eval_every=None, eval_windows=None, patience=None, save_every=None,
                 learning_rate=None, weight_decay=None, grad_clip=None, seed=0, mixed_precision=False,
                 gradient_checkpointing=False, use_8bit_optimizer=False, data_parallel=None, time_budget=None,
                 warmup_fraction=None, min_learning_rate=None, force=False):
        """Options left as None take the library's defaults (hmst_trainer_default_params).
        time_budget: train for this many seconds (evaluations not counted) instead of epochs;
        the warmup and cosine decay then follow the share of the budget spent.
        force: start over in an output_dir that holds an earlier run (its metrics.jsonl, final/,
        best_model/ and checkpoints are removed first); without it such a directory raises
        hmst.HMSTError (INVALID_ARGUMENT) unless resume_from continues that run."""
        self._h = None
        self._keep = []
        p = _lib.lib.hmst_trainer_default_params()
        for name, value in (("train_data", train_data), ("val_data", val_data), ("output_dir", output_dir),
                            ("model_size", model_size), ("init_from", init_from), ("resume_from", resume_from)):
            if value is not None:
                b = _path(value, name)
                self._keep.append(b)
                setattr(p, name, b)
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("seq_len", seq_len),
                            ("steps_per_epoch", steps_per_epoch), ("grad_accum_steps", grad_accum_steps),
                            ("eval_every", eval_every), ("eval_windows", eval_windows), ("patience", patience),
                            ("save_every", save_every)):
            if value is not None:
                setattr(p, name, value)   # range-checked by the struct (_lib._Struct)
        for name, value in (("learning_rate", learning_rate), ("weight_decay", weight_decay), ("grad_clip", grad_clip),
                            ("time_budget_seconds", time_budget), ("warmup_fraction", warmup_fraction),
                            ("min_learning_rate", min_learning_rate)):
            if value is not None:
                setattr(p, name, float(value))
        p.seed = seed
        p.force = bool(force)
        p.mixed_precision = bool(mixed_precision)
        p.gradient_checkpointing = bool(gradient_checkpointing)
        p.use_8bit_optimizer = bool(use_8bit_optimizer)
        # None: one process; "mpi" or hmst.DataParallel: a rank of an MPI job (every rank makes every call)
        p.data_parallel = _params_pointer(data_parallel, self._keep)
        # one trampoline for the trainer's life; run(progress=...) decides what it calls
        state = self._state = {"progress": None, "errors": []}

        def trampoline(ptr, _ud):
            fn = state["progress"]
            if fn is None:
                return True
            s = ptr.contents
            info = {"step": s.step, "total_steps": s.total_steps, "epoch": s.epoch, "loss": s.loss,
                    "learning_rate": s.learning_rate, "tokens_per_second": s.tokens_per_second,
                    "eta_seconds": s.eta_seconds, "val_loss": None if math.isnan(s.val_loss) else s.val_loss}
            try:
                return fn(info) is not False
            except BaseException as e:  # never unwind into C; re-raised after the call
                state["errors"].append(e)
                return False

        self._trampoline = _lib.TRAIN_PROGRESS_CALLBACK(trampoline)
        p.progress = self._trampoline
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_trainer_create(ctypes.byref(p), ctypes.byref(h)))
        self._h = h

    def step(self):
        """One optimizer step; returns its loss."""
        loss = ctypes.c_double()
        _check(_lib.lib.hmst_trainer_step(self._handle(), ctypes.byref(loss)))
        return loss.value

    def evaluate(self):
        """Mean validation loss in nats per token."""
        v = ctypes.c_double()
        _check(_lib.lib.hmst_trainer_evaluate(self._handle(), ctypes.byref(v)))
        return v.value

    def run(self, progress=None):
        """Runs the remaining steps. progress(dict) returning False stops training (final/ is
        still saved). Returns the number of steps done."""
        self._state["progress"], self._state["errors"] = progress, []
        steps = ctypes.c_int32()
        try:
            rc = _lib.lib.hmst_trainer_run(self._handle(), ctypes.byref(steps))
        finally:
            self._state["progress"] = None
        if self._state["errors"]:
            raise self._state["errors"][0]
        _check(rc)
        return steps.value

    @property
    def rank(self):
        """This process's rank (0 for one process)."""
        return _rank(_lib.lib.hmst_trainer_get_rank, self._handle())[0]

    @property
    def ranks(self):
        """Processes training together (1 for one process)."""
        return _rank(_lib.lib.hmst_trainer_get_rank, self._handle())[1]

    def save(self, directory):
        """A loadable checkpoint plus the state to resume from."""
        _check(_lib.lib.hmst_trainer_save(self._handle(), _path(directory, "directory")))
