"""Low-level ctypes declarations of include/hmst.h, in header order. Nothing else lives here.

The library is located through HMST_LIBRARY, then the package folder, then the system path.
At load time the ABI version and the sizes of the versioned structs are checked against what
this module declares, so a mismatched libhmst fails loudly at import instead of corrupting memory.
"""
import ctypes
import ctypes.util
import os

ABI_VERSION = 1  # HMST_ABI_VERSION these declarations match

# enum hmst_status
OK = 0
INVALID_ARGUMENT = -1
BUFFER_TOO_SMALL = -2
IO = -3
BAD_FORMAT = -4
OUT_OF_MEMORY = -5
UNSUPPORTED = -6
CANCELLED = -7
NOT_FOUND = -8
INTERNAL = -99

# enum hmst_log_level
LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_NONE = range(5)

_INTEGER_CTYPES = (ctypes.c_int8, ctypes.c_int16, ctypes.c_int32, ctypes.c_int64,
                   ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64)


class _Struct(ctypes.Structure):
    """Every struct of the header. An integer field refuses a value its C type cannot hold: ctypes
    would store it wrapped (n_ctx = 2**32 + 16 as 16, seed = -1 as 2**64 - 1) without a word.
    Ints and numpy ints only (not floats or bools): TypeError; out of range: HMSTError
    (INVALID_ARGUMENT) naming the field."""

    def __setattr__(self, name, value):
        bounds = type(self)._bounds().get(name)
        if bounds is not None:
            from .api import _int   # api imports this module: import at use
            value = _int(name, value, *bounds)
        super().__setattr__(name, value)

    @classmethod
    def _bounds(cls):
        b = cls.__dict__.get("_int_bounds")
        if b is None:
            b = {}
            for field in cls._fields_:
                t = field[1]
                if t in _INTEGER_CTYPES:
                    bits = 8 * ctypes.sizeof(t)
                    b[field[0]] = (-2**(bits - 1), 2**(bits - 1) - 1) if t(-1).value < 0 else (0, 2**bits - 1)
            cls._int_bounds = b
        return b


class SystemInfo(_Struct):
    """struct hmst_system_info"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("version", ctypes.c_char * 16),
        ("abi_version", ctypes.c_int32),
        ("n_cpus", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("blas_threads", ctypes.c_int32),
        ("blas_core", ctypes.c_char * 32),
        ("blas_config", ctypes.c_char * 128),
        ("simd_flags", ctypes.c_uint64),
        ("simd_names", ctypes.c_char * 128),
        ("numa_available", ctypes.c_int32),
        ("numa_nodes", ctypes.c_int32),
        ("numa_policy_permitted", ctypes.c_int32),
        ("faiss_version", ctypes.c_char * 16),
        ("blas_core_at_load", ctypes.c_char * 32),
        ("blas_core_best", ctypes.c_char * 32),
        ("blas_below_capability", ctypes.c_int32),
        ("mixed_precision_bf16", ctypes.c_int32),
        ("fma_gflops", ctypes.c_double),
        ("bf16_gflops", ctypes.c_double),
        ("kernels", ctypes.c_char * 32),
        ("int8_kernels", ctypes.c_char * 32),
        ("bf16_weight_compute_bf16", ctypes.c_int32),
        ("bf16_decode_compute_bf16", ctypes.c_int32),
        ("f32_gemm_hmst", ctypes.c_int32),
        ("f32_gemm_hmst_16bit", ctypes.c_int32),
    ]


PROGRESS_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_float, ctypes.c_void_p)
TOKEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                                  ctypes.c_void_p)

# enum hmst_numa_strategy
NUMA_DISABLED, NUMA_DISTRIBUTE, NUMA_ISOLATE, NUMA_NUMACTL = range(4)
# enum hmst_stop_reason
STOP_REASONS = ["max_tokens", "eos", "stop_string", "callback", "context_full", "no_continuation"]


class ModelParams(_Struct):
    """struct hmst_model_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("numa", ctypes.c_int32),
        ("numa_copy", ctypes.c_bool),
        ("prefetch", ctypes.c_bool),
        ("mlock", ctypes.c_bool),
        ("load_tokenizer", ctypes.c_bool),
        ("progress", PROGRESS_CALLBACK),
        ("progress_user_data", ctypes.c_void_p),
        ("check_tensors", ctypes.c_bool),
        ("weights", ctypes.c_int32),
    ]


class ModelInfo(_Struct):
    """struct hmst_model_info"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_vocab", ctypes.c_int32),
        ("n_embd", ctypes.c_int32),
        ("n_layer", ctypes.c_int32),
        ("n_head", ctypes.c_int32),
        ("n_head_kv", ctypes.c_int32),
        ("head_dim", ctypes.c_int32),
        ("n_ff", ctypes.c_int32),
        ("n_expert", ctypes.c_int32),
        ("n_expert_used", ctypes.c_int32),
        ("n_ctx_train", ctypes.c_int32),
        ("n_params", ctypes.c_int64),
        ("n_params_active", ctypes.c_int64),
        ("has_tokenizer", ctypes.c_int32),
        ("eos_token", ctypes.c_int32),
        ("load_ms", ctypes.c_double),
        ("numa_applied", ctypes.c_int32),
        ("weights_bf16", ctypes.c_int32),
    ]


class ContextParams(_Struct):
    """struct hmst_context_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_ctx", ctypes.c_int32),
        ("n_batch", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("trace_routes", ctypes.c_bool),
        ("kv_type", ctypes.c_int32),
    ]


class SamplingParams(_Struct):
    """struct hmst_sampling_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repetition_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
    ]


class ChatParams(_Struct):
    """struct hmst_chat_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("add_generation_prompt", ctypes.c_bool),
        ("tools_json", ctypes.c_char_p),
        ("template_vars_json", ctypes.c_char_p),
        ("tool_choice", ctypes.c_char_p),
        ("parallel_tool_calls", ctypes.c_bool),
    ]


class GenerateParams(_Struct):
    """struct hmst_generate_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("max_tokens", ctypes.c_int32),
        ("sampling", SamplingParams),
        ("stop", ctypes.POINTER(ctypes.c_char_p)),
        ("n_stop", ctypes.c_size_t),
        ("ignore_eos", ctypes.c_bool),
        ("on_token", TOKEN_CALLBACK),
        ("user_data", ctypes.c_void_p),
        ("frequency_penalty", ctypes.c_float),
        ("presence_penalty", ctypes.c_float),
        ("logit_bias_tokens", ctypes.POINTER(ctypes.c_int32)),
        ("logit_bias", ctypes.POINTER(ctypes.c_float)),
        ("n_logit_bias", ctypes.c_size_t),
        ("json_object", ctypes.c_bool),
        ("grammar", ctypes.c_char_p),
        ("json_schema", ctypes.c_char_p),
    ]


class GenerationStats(_Struct):
    """struct hmst_generation_stats"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("prompt_tokens", ctypes.c_int32),
        ("generated_tokens", ctypes.c_int32),
        ("stop_reason", ctypes.c_int32),
        ("load_ms", ctypes.c_double),
        ("prompt_ms", ctypes.c_double),
        ("generate_ms", ctypes.c_double),
        ("time_to_first_token_ms", ctypes.c_double),
        ("prompt_tokens_per_second", ctypes.c_double),
        ("tokens_per_second", ctypes.c_double),
        ("cached_tokens", ctypes.c_int32),
    ]


class TokenizerTrainParams(_Struct):
    """struct hmst_tokenizer_train_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("vocab_size", ctypes.c_int32),
        ("min_frequency", ctypes.c_int32),
        ("special_tokens", ctypes.POINTER(ctypes.c_char_p)),
        ("n_special_tokens", ctypes.c_size_t),
        ("progress", PROGRESS_CALLBACK),
        ("progress_user_data", ctypes.c_void_p),
    ]


class TrainProgress(_Struct):
    """struct hmst_train_progress"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("step", ctypes.c_int32),
        ("total_steps", ctypes.c_int32),
        ("epoch", ctypes.c_int32),
        ("loss", ctypes.c_double),
        ("learning_rate", ctypes.c_double),
        ("tokens_per_second", ctypes.c_double),
        ("eta_seconds", ctypes.c_double),
        ("val_loss", ctypes.c_double),
    ]


TRAIN_PROGRESS_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.POINTER(TrainProgress), ctypes.c_void_p)


class TrainerParams(_Struct):
    """struct hmst_trainer_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("train_data", ctypes.c_char_p),
        ("val_data", ctypes.c_char_p),
        ("output_dir", ctypes.c_char_p),
        ("model_size", ctypes.c_char_p),
        ("init_from", ctypes.c_char_p),
        ("resume_from", ctypes.c_char_p),
        ("epochs", ctypes.c_int32),
        ("batch_size", ctypes.c_int32),
        ("seq_len", ctypes.c_int32),
        ("steps_per_epoch", ctypes.c_int32),
        ("grad_accum_steps", ctypes.c_int32),
        ("eval_every", ctypes.c_int32),
        ("eval_windows", ctypes.c_int32),
        ("patience", ctypes.c_int32),
        ("save_every", ctypes.c_int32),
        ("learning_rate", ctypes.c_float),
        ("weight_decay", ctypes.c_float),
        ("grad_clip", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("progress", TRAIN_PROGRESS_CALLBACK),
        ("user_data", ctypes.c_void_p),
        ("mixed_precision", ctypes.c_bool),
        ("gradient_checkpointing", ctypes.c_bool),
        ("use_8bit_optimizer", ctypes.c_bool),
        ("data_parallel", ctypes.c_void_p),
        ("time_budget_seconds", ctypes.c_double),
        ("warmup_fraction", ctypes.c_float),
        ("min_learning_rate", ctypes.c_float),
        ("force", ctypes.c_bool),
    ]


# enum hmst_metric
METRIC_COSINE, METRIC_INNER_PRODUCT, METRIC_L2 = range(3)


class MemoryHit(_Struct):
    """struct hmst_memory_hit"""
    _fields_ = [("id", ctypes.c_int64), ("score", ctypes.c_float)]


class SemanticParams(_Struct):
    """struct hmst_semantic_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("dim", ctypes.c_int32),
        ("index_description", ctypes.c_char_p),
        ("metric", ctypes.c_int32),
        ("nprobe", ctypes.c_int32),
    ]


class EpisodicParams(_Struct):
    """struct hmst_episodic_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_int32),
        ("state_size", ctypes.c_int32),
        ("max_tokens", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
    ]


class ConsolidateParams(_Struct):
    """struct hmst_consolidate_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("threshold", ctypes.c_double),
        ("max_per_run", ctypes.c_int32),
        ("remove_from_episodic", ctypes.c_bool),
        ("half_life_seconds", ctypes.c_double),
    ]


class EvalParams(_Struct):
    """struct hmst_eval_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("task_paths", ctypes.POINTER(ctypes.c_char_p)),
        ("n_tasks", ctypes.c_size_t),
        ("memory_dir", ctypes.c_char_p),
        ("conditions", ctypes.c_uint32),
        ("k", ctypes.c_int32),
        ("limit", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("bootstrap_resamples", ctypes.c_int32),
        ("n_ctx", ctypes.c_int32),
        ("report_path", ctypes.c_char_p),
        ("items_path", ctypes.c_char_p),
        ("retrieval_mode", ctypes.c_int32),
        ("dense_weight", ctypes.c_float),
        ("lexical_weight", ctypes.c_float),
        ("min_coverage", ctypes.c_float),
    ]


# enum hmst_retrieval_mode
RETRIEVAL_HYBRID, RETRIEVAL_DENSE, RETRIEVAL_LEXICAL = range(3)
RETRIEVAL_MODES = {"hybrid": RETRIEVAL_HYBRID, "dense": RETRIEVAL_DENSE, "lexical": RETRIEVAL_LEXICAL}


class RetrievalParams(_Struct):
    """struct hmst_retrieval_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("mode", ctypes.c_int32),
        ("k", ctypes.c_int32),
        ("n_candidates", ctypes.c_int32),
        ("rrf_k", ctypes.c_float),
        ("dense_weight", ctypes.c_float),
        ("lexical_weight", ctypes.c_float),
        ("bm25_k1", ctypes.c_float),
        ("bm25_b", ctypes.c_float),
        ("nprobe", ctypes.c_int32),
        ("min_coverage", ctypes.c_float),
    ]


class RetrievalHit(_Struct):
    """struct hmst_retrieval_hit"""
    _fields_ = [
        ("id", ctypes.c_int64),
        ("score", ctypes.c_float),
        ("dense_score", ctypes.c_float),
        ("lexical_score", ctypes.c_float),
        ("dense_rank", ctypes.c_int32),
        ("lexical_rank", ctypes.c_int32),
    ]


class MemoryEval(_Struct):
    """struct hmst_memory_eval"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_questions", ctypes.c_int32),
        ("nll_oracle", ctypes.c_double),
        ("nll_on", ctypes.c_double),
        ("nll_off", ctypes.c_double),
        ("nll_deleted", ctypes.c_double),
        ("exact_match_oracle", ctypes.c_double),
        ("exact_match_on", ctypes.c_double),
        ("exact_match_off", ctypes.c_double),
        ("exact_match_deleted", ctypes.c_double),
    ]


class MemoryTrainProgress(_Struct):
    """struct hmst_memory_train_progress"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("step", ctypes.c_int32),
        ("total_steps", ctypes.c_int32),
        ("lm_step", ctypes.c_bool),
        ("loss", ctypes.c_double),
        ("learning_rate", ctypes.c_double),
        ("tokens_per_second", ctypes.c_double),
        ("eta_seconds", ctypes.c_double),
        ("evaluated", ctypes.c_bool),
        ("eval", MemoryEval),
        ("val_loss", ctypes.c_double),
        ("val_bits_per_byte", ctypes.c_double),
    ]


MEMORY_TRAIN_PROGRESS_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.POINTER(MemoryTrainProgress), ctypes.c_void_p)


class MemoryTrainerParams(_Struct):
    """struct hmst_memory_trainer_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("checkpoint", ctypes.c_char_p),
        ("facts_dir", ctypes.c_char_p),
        ("train_data", ctypes.c_char_p),
        ("val_data", ctypes.c_char_p),
        ("output_dir", ctypes.c_char_p),
        ("resume_from", ctypes.c_char_p),
        ("steps", ctypes.c_int32),
        ("batch_size", ctypes.c_int32),
        ("seq_len", ctypes.c_int32),
        ("memory_seq_len", ctypes.c_int32),
        ("grad_accum_steps", ctypes.c_int32),
        ("k", ctypes.c_int32),
        ("eval_every", ctypes.c_int32),
        ("eval_questions", ctypes.c_int32),
        ("learning_rate", ctypes.c_float),
        ("weight_decay", ctypes.c_float),
        ("grad_clip", ctypes.c_float),
        ("lm_fraction", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("progress", MEMORY_TRAIN_PROGRESS_CALLBACK),
        ("user_data", ctypes.c_void_p),
        ("mixed_precision", ctypes.c_bool),
        ("gradient_checkpointing", ctypes.c_bool),
        ("use_8bit_optimizer", ctypes.c_bool),
        ("data_parallel", ctypes.c_void_p),
        ("copy_head_key_size", ctypes.c_int32),
        ("copy_head_learning_rate", ctypes.c_float),
        ("episodic_soft_tokens", ctypes.c_int32),
        ("episodic_fraction", ctypes.c_float),
        ("episodic_learning_rate", ctypes.c_float),
        ("episodic_soft_input", ctypes.c_int32),
        ("episodic_copy", ctypes.c_bool),
        ("episodic_pretrain_steps", ctypes.c_int32),
        ("episodic_readout", ctypes.c_float),
        ("gold_weight", ctypes.c_float),
        ("distractors_only_weight", ctypes.c_float),
        ("no_memory_weight", ctypes.c_float),
        ("questions_per_example", ctypes.c_int32),
        ("hard_distractors", ctypes.c_float),
        ("retrieved_distractors", ctypes.c_float),
        ("retrieved_by", ctypes.c_int32),
        ("copy_gate_target_weight", ctypes.c_float),
        ("retrieved_lexical_weight", ctypes.c_float),
        ("distractor_distillation", ctypes.c_float),
        ("distilled_gate_target_weight", ctypes.c_float),
        ("copy_gate_open_weight", ctypes.c_float),
        ("copy_gate_agreement_rank", ctypes.c_int32),
        ("copy_gate_lexical_overlap", ctypes.c_bool),
        ("copy_gate_missing_terms", ctypes.c_bool),
        ("copy_gate_lexical_scale", ctypes.c_float),
        ("force", ctypes.c_bool),
    ]


class EngineParams(_Struct):
    """struct hmst_engine_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("k", ctypes.c_int32),
        ("exit_layer", ctypes.c_int32),
        ("selected_experts", ctypes.c_int32),
        ("confidence_threshold", ctypes.c_float),
        ("retry_with_memory", ctypes.c_bool),
        ("n_ctx", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("episodic_retrieval", ctypes.c_int32),
    ]


class EngineResult(_Struct):
    """struct hmst_engine_result"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("answer", ctypes.c_char * 1024),
        ("model_answer", ctypes.c_char * 1024),
        ("abstained", ctypes.c_bool),
        ("retried", ctypes.c_bool),
        ("confidence", ctypes.c_float),
        ("confidence_calibrated", ctypes.c_bool),
        ("decisions", ctypes.c_bool * 5),
        ("probabilities", ctypes.c_float * 5),
        ("n_citations", ctypes.c_int32),
        ("n_tokens", ctypes.c_int32),
        ("prompt_tokens", ctypes.c_int32),
        ("generated_tokens", ctypes.c_int32),
        ("matmul_flops", ctypes.c_double),
        ("vectors_scanned", ctypes.c_int64),
        ("ssm_tokens_encoded", ctypes.c_int64),
        ("critic_calls", ctypes.c_int32),
        ("stage_ms", ctypes.c_double * 6),
    ]


ENGINE_TOKEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                                         ctypes.c_float, ctypes.c_void_p)
ENGINE_RESULT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.POINTER(EngineResult), ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                                          ctypes.c_void_p)


class EngineQueryParams(_Struct):
    """struct hmst_engine_query_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("policy", ctypes.c_char_p),
        ("max_tokens", ctypes.c_int32),
        ("temperature", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("on_token", ENGINE_TOKEN_CALLBACK),
        ("on_result", ENGINE_RESULT_CALLBACK),
        ("user_data", ctypes.c_void_p),
        ("owner", ctypes.c_char_p),
    ]


# struct name in hmst.h -> ctypes class, checked against hmst_sizeof() at load
class DataParallelParams(_Struct):
    """struct hmst_data_parallel_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("mode", ctypes.c_int32),
        ("mpi_comm", ctypes.c_void_p),
        ("collective_timeout_s", ctypes.c_double),
        ("bucket_mb", ctypes.c_int32),
        ("numa_rank", ctypes.c_bool),
    ]


# enum hmst_data_parallel_mode
DATA_PARALLEL_NONE, DATA_PARALLEL_MPI_WORLD, DATA_PARALLEL_MPI_COMM = range(3)

STRUCTS = {
    "hmst_data_parallel_params": DataParallelParams,
    "hmst_system_info": SystemInfo,
    "hmst_model_params": ModelParams,
    "hmst_model_info": ModelInfo,
    "hmst_context_params": ContextParams,
    "hmst_sampling_params": SamplingParams,
    "hmst_generate_params": GenerateParams,
    "hmst_generation_stats": GenerationStats,
    "hmst_tokenizer_train_params": TokenizerTrainParams,
    "hmst_trainer_params": TrainerParams,
    "hmst_train_progress": TrainProgress,
    "hmst_semantic_params": SemanticParams,
    "hmst_episodic_params": EpisodicParams,
    "hmst_consolidate_params": ConsolidateParams,
    "hmst_memory_hit": MemoryHit,
    "hmst_eval_params": EvalParams,
    "hmst_retrieval_params": RetrievalParams,
    "hmst_retrieval_hit": RetrievalHit,
    "hmst_memory_eval": MemoryEval,
    "hmst_memory_train_progress": MemoryTrainProgress,
    "hmst_memory_trainer_params": MemoryTrainerParams,
    "hmst_engine_params": EngineParams,
    "hmst_engine_query_params": EngineQueryParams,
    "hmst_engine_result": EngineResult,
}

LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _candidates():
    env = os.environ.get("HMST_LIBRARY")
    if env:
        yield env, "HMST_LIBRARY"
        return  # an explicit choice is never silently replaced by another library
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libhmst.so", "libhmst.so.0"):
        path = os.path.join(here, name)
        if os.path.exists(path):
            yield path, "package folder"
    found = ctypes.util.find_library("hmst")
    for name in ([found] if found else []) + ["libhmst.so.0", "libhmst.so"]:
        yield name, "system library path"


def _load():
    errors = []
    for path, origin in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path} ({origin}): {e}")
    raise ImportError("hmst: cannot load libhmst. Tried: " + "; ".join(errors) +
                      ". Build it with `make lib` and set HMST_LIBRARY=/path/to/libhmst.so, "
                      "or `make install`.")


lib, path = _load()


def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_declare("hmst_status_string", ctypes.c_char_p, ctypes.c_int)
_declare("hmst_last_error", ctypes.c_char_p)
_declare("hmst_clear_error", None)
_declare("hmst_version", ctypes.c_char_p)
_declare("hmst_abi_version", ctypes.c_int)
_declare("hmst_sizeof", ctypes.c_size_t, ctypes.c_char_p)
_declare("hmst_log_set", None, LOG_CALLBACK, ctypes.c_void_p)
_declare("hmst_log_set_level", ctypes.c_int, ctypes.c_int)
_declare("hmst_system_info", ctypes.c_int, ctypes.POINTER(SystemInfo))
_declare("hmst_system_info_json", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t))
_declare("hmst_set_n_threads", ctypes.c_int, ctypes.c_int32)
_declare("hmst_get_n_threads", ctypes.c_int32)

_P = ctypes.c_void_p  # opaque handles
_SIZE_P = ctypes.POINTER(ctypes.c_size_t)
_declare("hmst_model_default_params", ModelParams)
_declare("hmst_model_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(_P))
_declare("hmst_model_init_random", ctypes.c_int, ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(_P))
_declare("hmst_model_save", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_char_p)
_declare("hmst_model_free", None, _P)
_declare("hmst_model_info", ctypes.c_int, _P, ctypes.POINTER(ModelInfo))
_declare("hmst_model_info_json", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_tokenize", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32),
         ctypes.c_size_t, _SIZE_P)
_declare("hmst_detokenize", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.c_char_p,
         ctypes.c_size_t, _SIZE_P)
_declare("hmst_context_default_params", ContextParams)
_declare("hmst_context_new", ctypes.c_int, _P, ctypes.POINTER(ContextParams), ctypes.POINTER(_P))
_declare("hmst_context_free", None, _P)
_declare("hmst_context_reset", ctypes.c_int, _P)
_declare("hmst_context_n_past", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32))
_declare("hmst_context_tokens", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
         ctypes.POINTER(ctypes.c_size_t))
_declare("hmst_context_rewind", ctypes.c_int, _P, ctypes.c_int32)
_declare("hmst_context_eval", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.c_bool)
_declare("hmst_context_get_logits", ctypes.c_int, _P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float),
         ctypes.c_size_t, _SIZE_P)
_declare("hmst_context_route_trace", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32),
         ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, _SIZE_P)
_declare("hmst_sampling_default_params", SamplingParams)
_declare("hmst_generate_default_params", GenerateParams)
_declare("hmst_generate", ctypes.c_int, _P, ctypes.c_char_p, ctypes.POINTER(GenerateParams),
         ctypes.POINTER(GenerationStats))
_declare("hmst_context_last_output", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_context_last_tool_calls", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_chat_default_params", ChatParams)
_declare("hmst_chat_apply_template", ctypes.c_int, _P, ctypes.c_char_p, ctypes.POINTER(ChatParams), ctypes.c_char_p,
         ctypes.c_size_t, _SIZE_P)
_declare("hmst_chat_tokenize", ctypes.c_int, _P, ctypes.c_char_p, ctypes.POINTER(ChatParams), ctypes.POINTER(ctypes.c_int32),
         ctypes.c_size_t, _SIZE_P)
_declare("hmst_chat_generate", ctypes.c_int, _P, ctypes.c_char_p, ctypes.POINTER(ChatParams), ctypes.POINTER(GenerateParams),
         ctypes.POINTER(GenerationStats))
_declare("hmst_json_schema_to_grammar", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_grammar_check", ctypes.c_int, ctypes.c_char_p)
_declare("hmst_tokenizer_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_P))
_declare("hmst_tokenizer_train_default_params", TokenizerTrainParams)
_declare("hmst_tokenizer_train", ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t,
         ctypes.POINTER(TokenizerTrainParams), ctypes.POINTER(_P))
_declare("hmst_tokenizer_save", ctypes.c_int, _P, ctypes.c_char_p)
_declare("hmst_tokenizer_free", None, _P)
_declare("hmst_tokenizer_encode", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32),
         ctypes.c_size_t, _SIZE_P)
_declare("hmst_tokenizer_decode", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.c_char_p,
         ctypes.c_size_t, _SIZE_P)
_declare("hmst_tokenizer_vocab_size", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32))
_declare("hmst_tokenizer_id_to_piece", ctypes.c_int, _P, ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_tokenizer_piece_to_id", ctypes.c_int, _P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32))
_declare("hmst_trainer_default_params", TrainerParams)
_declare("hmst_trainer_create", ctypes.c_int, ctypes.POINTER(TrainerParams), ctypes.POINTER(_P))
_declare("hmst_trainer_step", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_double))
_declare("hmst_trainer_evaluate", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_double))
_declare("hmst_trainer_run", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32))
_declare("hmst_trainer_save", ctypes.c_int, _P, ctypes.c_char_p)
_declare("hmst_trainer_free", None, _P)

_F = ctypes.POINTER(ctypes.c_float)
_I64 = ctypes.POINTER(ctypes.c_int64)
_HITS = ctypes.POINTER(MemoryHit)
_I32 = ctypes.POINTER(ctypes.c_int32)
_declare("hmst_model_embed", ctypes.c_int, _P, ctypes.c_char_p, _F, ctypes.c_size_t, _SIZE_P)
_declare("hmst_semantic_default_params", SemanticParams)
_declare("hmst_semantic_create", ctypes.c_int, ctypes.POINTER(SemanticParams), ctypes.POINTER(_P))
_declare("hmst_semantic_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_P))
_declare("hmst_semantic_save", ctypes.c_int, _P, ctypes.c_char_p)
_declare("hmst_semantic_free", None, _P)
_declare("hmst_semantic_reencode", ctypes.c_int, _P, _P, ctypes.POINTER(_P))
_declare("hmst_semantic_add", ctypes.c_int, _P, _F, ctypes.c_int64, _I64, ctypes.POINTER(ctypes.c_char_p), ctypes.c_char_p, _I64)
_declare("hmst_semantic_add_text", ctypes.c_int, _P, _P, ctypes.c_char_p, ctypes.c_char_p, _I64)
_declare("hmst_semantic_search", ctypes.c_int, _P, _F, ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, _HITS)
# The same function as a second prototype whose pointers are plain addresses (numpy's
# array.ctypes.data): building POINTER objects with data_as costs ~4 us each, more than a
# single-query search at nprobe 1 (memory.SemanticMemory.search).
semantic_search_by_address = lib["hmst_semantic_search"]
semantic_search_by_address.restype = ctypes.c_int
semantic_search_by_address.argtypes = [_P, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p]
_declare("hmst_semantic_search_text", ctypes.c_int, _P, _P, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32, _HITS, _I32)
_declare("hmst_semantic_remove", ctypes.c_int, _P, _I64, ctypes.c_int64, _I64)
_declare("hmst_semantic_get_text", ctypes.c_int, _P, ctypes.c_int64, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_semantic_set_background_training", ctypes.c_int, _P, ctypes.c_bool)
_declare("hmst_semantic_wait_training", ctypes.c_int, _P)
_declare("hmst_semantic_stats_json", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_episodic_default_params", EpisodicParams)
_declare("hmst_episodic_create", ctypes.c_int, _P, ctypes.POINTER(EpisodicParams), ctypes.POINTER(_P))
_declare("hmst_episodic_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_P))
_declare("hmst_episodic_save", ctypes.c_int, _P, ctypes.c_char_p)
_declare("hmst_episodic_free", None, _P)
_declare("hmst_episodic_reencode", ctypes.c_int, _P, _P, ctypes.POINTER(_P))
_declare("hmst_episodic_add_text", ctypes.c_int, _P, _P, ctypes.c_char_p, ctypes.c_float, _I64)
_declare("hmst_episodic_add_key", ctypes.c_int, _P, _F, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_float, _I64)
_declare("hmst_episodic_search_text", ctypes.c_int, _P, _P, ctypes.c_char_p, ctypes.c_int32, _HITS, _I32)
_declare("hmst_episodic_search_key", ctypes.c_int, _P, _F, ctypes.c_size_t, ctypes.c_int32, _HITS, _I32)
_declare("hmst_episodic_remove", ctypes.c_int, _P, _I64, ctypes.c_int64, _I64)
_declare("hmst_episodic_get_text", ctypes.c_int, _P, ctypes.c_int64, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_episodic_stats_json", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_consolidate_default_params", ConsolidateParams)
_declare("hmst_consolidate", ctypes.c_int, _P, _P, _P, ctypes.POINTER(ConsolidateParams), _I32)
_declare("hmst_consolidator_start", ctypes.c_int, _P, _P, _P, ctypes.POINTER(ConsolidateParams), ctypes.c_double,
         ctypes.POINTER(_P))
_declare("hmst_consolidator_stop", None, _P, _I32, _I32)
_declare("hmst_eval_default_params", EvalParams)
_declare("hmst_eval_run", ctypes.c_int, _P, ctypes.POINTER(EvalParams), ctypes.c_char_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_retrieval_default_params", RetrievalParams)
_declare("hmst_semantic_retrieve", ctypes.c_int, _P, _P, ctypes.c_char_p, _F, ctypes.c_size_t, ctypes.POINTER(RetrievalParams),
         ctypes.c_void_p, ctypes.c_size_t, _SIZE_P)
_declare("hmst_episodic_retrieve", ctypes.c_int, _P, _P, ctypes.c_char_p, ctypes.POINTER(RetrievalParams), ctypes.c_void_p,
         ctypes.c_size_t, _SIZE_P)

_declare("hmst_memory_trainer_default_params", MemoryTrainerParams)
_declare("hmst_memory_trainer_create", ctypes.c_int, ctypes.POINTER(MemoryTrainerParams), ctypes.POINTER(_P))
_declare("hmst_memory_trainer_step", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_bool))
_declare("hmst_memory_trainer_evaluate", ctypes.c_int, _P, ctypes.POINTER(MemoryEval))
_declare("hmst_memory_trainer_run", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32))
_declare("hmst_memory_trainer_save", ctypes.c_int, _P, ctypes.c_char_p)
_declare("hmst_memory_trainer_free", None, _P)
_declare("hmst_data_parallel_default_params", DataParallelParams)
_declare("hmst_trainer_get_rank", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32))
_declare("hmst_memory_trainer_get_rank", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32))

_declare("hmst_engine_default_params", EngineParams)
_declare("hmst_engine_query_default_params", EngineQueryParams)
_declare("hmst_engine_create", ctypes.c_int, _P, _P, _P, ctypes.POINTER(EngineParams), ctypes.POINTER(_P))
_declare("hmst_engine_free", None, _P)
_declare("hmst_engine_ask", ctypes.c_int, _P, ctypes.c_char_p, ctypes.POINTER(EngineQueryParams), ctypes.POINTER(EngineResult))
_declare("hmst_engine_info", ctypes.c_int, _P, ctypes.POINTER(ctypes.c_bool), ctypes.POINTER(ctypes.c_bool),
         ctypes.POINTER(ctypes.c_int32))


def _check_abi():
    abi = lib.hmst_abi_version()
    if abi != ABI_VERSION:
        raise ImportError(f"hmst: {path} has ABI version {abi}, these bindings need {ABI_VERSION}")
    for name, cls in STRUCTS.items():
        size = lib.hmst_sizeof(name.encode())
        if size != ctypes.sizeof(cls):
            raise ImportError(f"hmst: struct {name} is {size} bytes in {path} but {ctypes.sizeof(cls)} "
                              "in these bindings; reinstall matching versions")


_check_abi()
