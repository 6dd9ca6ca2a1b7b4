"""hmst: Python bindings for libhmst, the Hierarchical Memory-State Transformer runtime.

    import hmst
    hmst.system_info()      # what the library sees of this machine
    hmst.set_threads(2)     # one knob for every thread pool

Failing calls raise hmst.HMSTError with .status, .status_name and .message.
"""
from .api import (HMSTError, abi_version, get_threads, library_path, set_log_handler, set_threads,
                  system_info, version)
from .data_parallel import DataParallel
from .engine import Engine, EngineResult
from .eval import evaluate
from .grammar import check_grammar, json_schema_to_grammar
from .int8 import dequantize, unpack_rows4
from .memory import Consolidator, EpisodicMemory, Hit, SemanticMemory, consolidate
from .memory_trainer import MemoryTrainer, train_memory
from .model import Context, Generation, Model
from .retrieval import RetrievalResult, retrieve
from .tokenizer import Tokenizer
from .trainer import Trainer

__version__ = "0.1.0"

__all__ = ["Consolidator", "Context", "DataParallel", "Engine", "EngineResult", "EpisodicMemory", "Hit", "MemoryTrainer", "SemanticMemory", "consolidate", "dequantize", "evaluate", "unpack_rows4",
           "Generation", "HMSTError", "Model", "RetrievalResult", "retrieve", "Tokenizer", "Trainer", "abi_version", "check_grammar", "json_schema_to_grammar",
           "train_memory", "get_threads", "library_path", "set_log_handler", "set_threads",
           "system_info", "version", "__version__"]
