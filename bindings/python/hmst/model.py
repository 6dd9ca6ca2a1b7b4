"""Models and contexts: loading checkpoints, tokenizing, evaluating and generating."""
import codecs
import ctypes
import json
import queue
import threading

import numpy as np

from . import _lib
from .api import HMSTError, _check, _int, _path, _Progress, _read_string, _Resource, _text
from .grammar import _schema_text
from .tokenizer import _decode_call, _encode_call

_WEIGHTS = {"as_stored": 0, "f32": 1, "bf16": 2, "int8": 3, "f16": 4}  # enum hmst_weight_type
_NUMA = {"disabled": _lib.NUMA_DISABLED, "distribute": _lib.NUMA_DISTRIBUTE, "isolate": _lib.NUMA_ISOLATE,
         "numactl": _lib.NUMA_NUMACTL}


class Generation:
    """The result of a generation: `text` (str), `raw` (bytes), `stats` (dict), and for a chat
    with tools `tool_calls`: OpenAI's [{"id", "type": "function", "function": {"name",
    "arguments"}}] (arguments as JSON text; empty when the reply made no call)."""

    def __init__(self, raw, stats, tool_calls=None):
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        self.stats = stats
        self.tool_calls = tool_calls or []

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Generation(text={self.text!r}, stats={self.stats!r})"


class Model(_Resource):
    """A loaded checkpoint directory (config.json + model.safetensors [+ tokenizer.json]).
    Close its contexts before the model.

        with hmst.Model("ckpt/") as model:
            print(model.generate("Once upon a time", max_tokens=20).text)
    """
    _kind = "model"
    _free = staticmethod(lambda h: _lib.lib.hmst_model_free(h))

    def __init__(self, path, *, numa="disabled", numa_copy=False, prefetch=False, mlock=False,
                 load_tokenizer=True, progress=None, check_tensors=False, weights="as_stored"):
        """Loads a checkpoint directory or a llama.cpp .gguf file. check_tensors: scan every
        weight for NaN/Inf. weights: "as_stored", "f32", "bf16", "f16" or "int8" (quantized at load)."""
        self._h = None
        if numa not in _NUMA:
            raise ValueError(f"numa must be one of {sorted(_NUMA)}, not {numa!r}")
        if weights not in _WEIGHTS:
            raise ValueError(f"weights must be one of {sorted(_WEIGHTS)}, not {weights!r}")
        p = _lib.lib.hmst_model_default_params()
        p.numa = _NUMA[numa]
        p.numa_copy = bool(numa_copy)
        p.prefetch = bool(prefetch)
        p.mlock = bool(mlock)
        p.load_tokenizer = bool(load_tokenizer)
        p.check_tensors = bool(check_tensors)
        p.weights = _WEIGHTS[weights]
        reporter = _Progress(progress) if progress is not None else None
        if reporter is not None:
            p.progress = reporter.c
        h = ctypes.c_void_p()
        rc = _lib.lib.hmst_model_load(_path(path), ctypes.byref(p), ctypes.byref(h))
        if reporter is not None:
            reporter.check(rc, release=lambda: _lib.lib.hmst_model_free(h))
        _check(rc)
        self._h = h

    @classmethod
    def random(cls, preset="micro", seed=0):
        """An untrained model with random weights in a preset shape."""
        self = cls.__new__(cls)
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_model_init_random(str(preset).encode(), _int("seed", seed, 0, 2**64 - 1), ctypes.byref(h)))
        self._h = h
        return self

    def save(self, directory, dtype="f32"):
        """Writes a checkpoint directory that transformers' MixtralForCausalLM can load.
        dtype: "f32", "bf16", "f16" or "int8" (Q8_0 blocks: I8 values plus F32 `*_scale` tensors)."""
        _check(_lib.lib.hmst_model_save(self._handle(), _path(directory, "directory"), _text(dtype, "dtype")))

    @property
    def info(self):
        """Config, parameter counts, weights dtype and load report, as a dict."""
        return json.loads(_read_string(lambda b, c, n: _lib.lib.hmst_model_info_json(self._handle(), b, c, n)))

    def _info_struct(self):
        i = _lib.ModelInfo(struct_size=ctypes.sizeof(_lib.ModelInfo))
        _check(_lib.lib.hmst_model_info(self._handle(), ctypes.byref(i)))
        return i

    @property
    def n_vocab(self):
        return self._info_struct().n_vocab

    @property
    def n_embd(self):
        """The hidden size C (the dimension of embed())."""
        return self._info_struct().n_embd

    def embed(self, text):
        """The pooled embedding of text: mean of the final-norm hidden states, unit length,
        as a float32 array of n_embd (what consolidation stores in semantic memory)."""
        out = np.zeros(self.n_embd, dtype=np.float32)
        n = ctypes.c_size_t()
        _check(_lib.lib.hmst_model_embed(self._handle(), _text(text),
                                         out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.shape[0], ctypes.byref(n)))
        return out

    @property
    def eos_token(self):
        e = self._info_struct().eos_token
        return None if e < 0 else e

    def tokenize(self, text):
        """str or bytes -> int32 array of token ids (the checkpoint's tokenizer)."""
        return _encode_call(_lib.lib.hmst_tokenize, self._handle(), text)

    def detokenize(self, ids):
        """token ids -> bytes (exactly what was encoded)."""
        return _decode_call(_lib.lib.hmst_detokenize, self._handle(), ids)

    def decode(self, ids):
        """token ids -> str (invalid UTF-8 replaced)."""
        return self.detokenize(ids).decode("utf-8", "replace")

    def context(self, n_ctx=0, n_batch=256, n_threads=0, trace_routes=False, kv_cache="f32"):
        """A Context over this model; kv_cache "f32" or "bf16" (see Context)."""
        return Context(self, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, trace_routes=trace_routes, kv_cache=kv_cache)

    def generate(self, prompt, **kwargs):
        """One-shot generation in a fresh context; see Context.generate for the options."""
        with self.context() as ctx:
            return ctx.generate(prompt, **kwargs)

    def apply_chat_template(self, messages, add_generation_prompt=True, tools=None, tokenize=False, tool_choice=None,
                            **template_vars):
        """The prompt `messages` ([{"role": ..., "content": ...}, ...]) become under this model's
        chat template: its chat_template.jinja, chat_template.json, tokenizer_config.json's
        chat_template or GGUF tokenizer.chat_template (rendered as transformers renders them),
        else hmst's built-in "User: / Assistant:" patterns. tools: OpenAI-style tools for
        templates that list them; other keyword arguments are template variables (e.g.
        enable_thinking=False). tokenize=True returns the token ids (an int32 array; the
        messages' text literal, so special tokens a user typed stay text), else the text. A
        template's refusal (roles out of order) raises HMSTError. With tools, the prompt
        Context.chat would evaluate (tool_choice "none" leaves them out; a template that does not
        mention tools gets hmst's generic tool format in its system message)."""
        m, p, keep = _chat_params(messages, tools, template_vars, add_generation_prompt, tool_choice)
        if tokenize:
            n = ctypes.c_size_t()
            rc = _lib.lib.hmst_chat_tokenize(self._handle(), m, ctypes.byref(p), None, 0, ctypes.byref(n))
            if rc not in (_lib.OK, _lib.BUFFER_TOO_SMALL):
                _check(rc)
            out = np.zeros(max(1, n.value), dtype=np.int32)
            _check(_lib.lib.hmst_chat_tokenize(self._handle(), m, ctypes.byref(p),
                                               out.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), out.shape[0], ctypes.byref(n)))
            return out[:n.value]
        return _read_string(lambda buf, cap, n: _lib.lib.hmst_chat_apply_template(self._handle(), m, ctypes.byref(p), buf, cap, n))

    def chat(self, messages, tools=None, template_vars=None, **kwargs):
        """The assistant's reply to `messages` in a fresh context; see Context.chat."""
        with self.context() as ctx:
            return ctx.chat(messages, tools=tools, template_vars=template_vars, **kwargs)


class Context(_Resource):
    """A KV cache and workspace over a model; use from one thread at a time."""
    _kind = "context"
    _free = staticmethod(lambda h: _lib.lib.hmst_context_free(h))

    def __init__(self, model, n_ctx=0, n_batch=256, n_threads=0, trace_routes=False, kv_cache="f32"):
        """kv_cache: "f32" or "bf16" (half the cache memory; keys/values rounded to bf16)."""
        self._h = None
        if kv_cache not in ("f32", "bf16"):
            raise ValueError(f"kv_cache must be 'f32' or 'bf16', not {kv_cache!r}")
        self.model = model
        p = _lib.lib.hmst_context_default_params()
        for name, v in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_threads", n_threads)):
            if not isinstance(v, int) or not -2**31 <= v < 2**31:
                raise HMSTError(_lib.INVALID_ARGUMENT, f"{name} must be an int32, not {v!r}")
        p.n_ctx, p.n_batch, p.n_threads, p.trace_routes = n_ctx, n_batch, n_threads, bool(trace_routes)
        p.kv_type = 1 if kv_cache == "bf16" else 0  # enum hmst_kv_type
        h = ctypes.c_void_p()
        _check(_lib.lib.hmst_context_new(model._handle(), ctypes.byref(p), ctypes.byref(h)))
        self._h = h
        self._info = model._info_struct()

    def reset(self):
        _check(_lib.lib.hmst_context_reset(self._handle()))

    @property
    def n_past(self):
        n = ctypes.c_int32()
        _check(_lib.lib.hmst_context_n_past(self._handle(), ctypes.byref(n)))
        return n.value

    @property
    def tokens(self):
        """int32 array of the context's tokens (prompts evaluated and tokens generated)."""
        n = ctypes.c_size_t()
        rc = _lib.lib.hmst_context_tokens(self._handle(), None, 0, ctypes.byref(n))
        if rc not in (_lib.OK, _lib.BUFFER_TOO_SMALL):
            _check(rc)
        out = np.zeros(max(1, n.value), dtype=np.int32)
        _check(_lib.lib.hmst_context_tokens(self._handle(), out.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                            out.shape[0], ctypes.byref(n)))
        return out[:n.value]

    def rewind(self, n):
        """Forgets positions >= n (0 <= n <= n_past): the next eval or generate continues from n."""
        _check(_lib.lib.hmst_context_rewind(self._handle(), _int("n", n, -2**31)))

    def eval(self, tokens, all_logits=False):
        """Appends token ids (int array-like) to the context and runs the model."""
        t = np.ascontiguousarray(np.asarray(tokens).reshape(-1))
        if t.size == 0:
            raise HMSTError(_lib.INVALID_ARGUMENT, "tokens is empty: evaluate at least one token")
        if t.dtype.kind not in "iu":
            raise TypeError(f"tokens must be integers, not {t.dtype}")
        if t.size and (t.min() < -2**31 or t.max() >= 2**31):
            raise HMSTError(_lib.INVALID_ARGUMENT, "token ids must fit int32")
        t = t.astype(np.int32)
        _check(_lib.lib.hmst_context_eval(self._handle(), t.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                          t.size, bool(all_logits)))

    def logits(self, row=-1):
        """float32 [V] logits of one row of the last eval (a copy)."""
        out = np.empty(self._info.n_vocab, dtype=np.float32)
        n = ctypes.c_size_t()
        _check(_lib.lib.hmst_context_get_logits(self._handle(), _int("row", row, -2**31),
                                                out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size,
                                                ctypes.byref(n)))
        return out

    def forward(self, tokens):
        """Evaluates tokens and returns float32 [T, V] logits for every one of them."""
        t = np.asarray(tokens).reshape(-1)
        self.eval(t, all_logits=True)
        return np.stack([self.logits(i) for i in range(t.size)])

    def route_trace(self):
        """(experts int32 [N, L, K], gates float32 [N, L, K]) of every token since reset."""
        n = ctypes.c_size_t()
        rc = _lib.lib.hmst_context_route_trace(self._handle(), None, None, 0, ctypes.byref(n))
        if rc not in (_lib.OK, _lib.BUFFER_TOO_SMALL):
            _check(rc)
        L, K = self._info.n_layer, self._info.n_expert_used
        experts = np.zeros(n.value, dtype=np.int32)
        gates = np.zeros(n.value, dtype=np.float32)
        if n.value:
            _check(_lib.lib.hmst_context_route_trace(self._handle(),
                                                     experts.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                                     gates.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                                     n.value, ctypes.byref(n)))
        return experts.reshape(-1, L, K), gates.reshape(-1, L, K)

    def _params(self, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, repeat_last_n, seed,
                stop, ignore_eos, frequency_penalty=0.0, presence_penalty=0.0, logit_bias=None, json_object=False,
                grammar=None, json_schema=None):
        p = _lib.lib.hmst_generate_default_params()
        p.max_tokens = _int("max_tokens", max_tokens, -2**31)
        s = p.sampling
        s.temperature, s.top_k, s.top_p, s.min_p = float(temperature), _int("top_k", top_k, -2**31), float(top_p), float(min_p)
        s.repetition_penalty, s.repeat_last_n = float(repetition_penalty), _int("repeat_last_n", repeat_last_n, -2**31)
        s.seed = _int("seed", seed, 0, 2**64 - 1)
        p.sampling = s
        keep = []
        if stop:
            if isinstance(stop, str):
                stop = [stop]
            arr = (ctypes.c_char_p * len(stop))(*[_text(x, "stop string") for x in stop])
            keep.append(arr)
            p.stop = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
            p.n_stop = len(stop)
        p.ignore_eos = bool(ignore_eos)
        p.frequency_penalty, p.presence_penalty = float(frequency_penalty), float(presence_penalty)
        p.json_object = bool(json_object)
        if grammar is not None:
            keep.append(_text(grammar, "grammar"))
            p.grammar = keep[-1]
        if json_schema is not None:
            keep.append(_schema_text(json_schema))
            p.json_schema = keep[-1]
        if logit_bias:
            items = list(dict(logit_bias).items())
            ids = (ctypes.c_int32 * len(items))(*[_int("logit_bias token", k, -2**31) for k, _ in items])
            values = (ctypes.c_float * len(items))(*[float(v) for _, v in items])
            keep += [ids, values]
            p.logit_bias_tokens = ctypes.cast(ids, ctypes.POINTER(ctypes.c_int32))
            p.logit_bias = ctypes.cast(values, ctypes.POINTER(ctypes.c_float))
            p.n_logit_bias = len(items)
        return p, keep

    def generate(self, prompt, max_tokens=50, temperature=0.8, top_k=50, top_p=0.9, min_p=0.0,
                 repetition_penalty=1.0, repeat_last_n=64, seed=0, stop=None, ignore_eos=False, on_token=None,
                 frequency_penalty=0.0, presence_penalty=0.0, logit_bias=None, json_object=False,
                 grammar=None, json_schema=None):
        """Appends `prompt` and generates; returns a Generation (text + stats dict).
        on_token(token_id, piece_bytes) -> False stops early. frequency_penalty and
        presence_penalty are OpenAI's, over the last repeat_last_n tokens (prompt included);
        logit_bias maps token ids to what is added to their logits (-100 all but bans a token,
        float('-inf') bans it). json_object=True: the text is one JSON object (generation stops
        when it closes; max_tokens may cut it short). grammar: GBNF text (llama.cpp's notation,
        starting at `root`); json_schema: a JSON Schema (dict or JSON text): the text is one JSON
        value it accepts. Generation stops when nothing can follow. A grammar or schema that
        cannot be read raises HMSTError naming the line and column, or the keyword."""
        p, keep = self._params(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, repeat_last_n,
                               seed, stop, ignore_eos, frequency_penalty, presence_penalty, logit_bias, json_object,
                               grammar, json_schema)
        prompt = _text(prompt, "prompt")
        return self._run(lambda params, stats: _lib.lib.hmst_generate(self._handle(), prompt, params, stats),
                         p, keep, on_token)

    def chat(self, messages, tools=None, template_vars=None, max_tokens=256, tool_choice=None, parallel_tool_calls=True,
             **kwargs):
        """Generates the assistant's reply to `messages` under the model's chat template
        (Model.apply_chat_template); the reply ends at the model's end-of-turn tokens
        (<|im_end|>, <|eot_id|>, its eos ids...). The context becomes the conversation and the
        reply; the longest prefix it already held is kept, not evaluated again (the next turn
        costs only its new messages; stats["cached_tokens"]). reset() first for a fresh
        context. Message text is literal: special tokens typed in it are plain text.
        template_vars: a dict of extra template variables. Takes Context.generate's options;
        returns a Generation.

        tools: OpenAI's [{"type": "function", "function": {"name", "description",
        "parameters"}}]; the reply is parsed in the syntax of the model's template (Hermes/Qwen
        <tool_call>, Mistral [TOOL_CALLS], Llama 3 JSON, else hmst's generic JSON format) into
        Generation.tool_calls, and Generation.text keeps the rest. tool_choice: "auto"
        (default: free text until the reply starts a call, then a grammar holds the call to the
        tools' schemas), "none", "required", or a function's name as {"type": "function",
        "function": {"name": ...}} (a grammar then holds the reply to a call)."""
        m, cp, chat_keep = _chat_params(messages, tools, template_vars or {}, True, tool_choice, parallel_tool_calls)
        options = dict(max_tokens=max_tokens, temperature=0.8, top_k=50, top_p=0.9, min_p=0.0, repetition_penalty=1.0,
                       repeat_last_n=64, seed=0, stop=None, ignore_eos=False, on_token=None, frequency_penalty=0.0,
                       presence_penalty=0.0, logit_bias=None, json_object=False, grammar=None, json_schema=None)
        unknown = set(kwargs) - set(options)
        if unknown:
            raise TypeError(f"chat() got unexpected keyword arguments {sorted(unknown)}")
        options.update(kwargs)
        on_token = options.pop("on_token")
        p, keep = self._params(*[options[k] for k in ("max_tokens", "temperature", "top_k", "top_p", "min_p",
                                                      "repetition_penalty", "repeat_last_n", "seed", "stop", "ignore_eos",
                                                      "frequency_penalty", "presence_penalty", "logit_bias", "json_object",
                                                      "grammar", "json_schema")])
        keep += chat_keep
        g = self._run(lambda params, stats: _lib.lib.hmst_chat_generate(self._handle(), m, ctypes.byref(cp), params, stats),
                      p, keep, on_token)
        g.tool_calls = json.loads(_read_string(lambda buf, cap, n: _lib.lib.hmst_context_last_tool_calls(self._handle(), buf, cap, n)))
        return g

    def _run(self, call, p, keep, on_token):
        errors = []
        if on_token is not None:
            def cb(token, piece, n, _ud):
                try:
                    return on_token(token, ctypes.string_at(piece, n)) is not False
                except BaseException as e:  # never unwind into C; re-raised after the call
                    errors.append(e)
                    return False
            keep.append(_lib.TOKEN_CALLBACK(cb))
            p.on_token = keep[-1]
        stats = _lib.GenerationStats(struct_size=ctypes.sizeof(_lib.GenerationStats))
        rc = call(ctypes.byref(p), ctypes.byref(stats))
        if errors:
            raise errors[0]
        _check(rc)
        raw = self._last_output()
        return Generation(raw, {
            "prompt_tokens": stats.prompt_tokens, "generated_tokens": stats.generated_tokens,
            "stop_reason": _lib.STOP_REASONS[stats.stop_reason] if 0 <= stats.stop_reason < len(_lib.STOP_REASONS) else stats.stop_reason,
            "load_ms": stats.load_ms, "prompt_ms": stats.prompt_ms, "generate_ms": stats.generate_ms,
            "time_to_first_token_ms": stats.time_to_first_token_ms,
            "prompt_tokens_per_second": stats.prompt_tokens_per_second, "tokens_per_second": stats.tokens_per_second,
            "cached_tokens": stats.cached_tokens})

    def _last_output(self):
        n = ctypes.c_size_t()
        rc = _lib.lib.hmst_context_last_output(self._handle(), None, 0, ctypes.byref(n))
        if rc not in (_lib.OK, _lib.BUFFER_TOO_SMALL):
            _check(rc)
        buf = ctypes.create_string_buffer(n.value + 1)
        _check(_lib.lib.hmst_context_last_output(self._handle(), buf, n.value + 1, ctypes.byref(n)))
        return buf.raw[:n.value]

    def stream(self, prompt, **kwargs):
        """Yields generated text pieces (str) as they are produced. Breaking out of the loop
        stops generation. The final Generation is available as the iterator's `.result`."""
        return _Stream(self, prompt, kwargs)

    def chat_stream(self, messages, **kwargs):
        """Context.chat, streamed: yields the reply's text pieces (str) as they are produced;
        breaking out of the loop stops generation; the final Generation (stats, tool_calls) is
        the iterator's `.result`. With tools (tool_choice not "none") the reply is parsed first,
        so its text comes whole at the end and the calls are in `.result.tool_calls`."""
        if "on_token" in kwargs:
            raise TypeError("chat_stream() streams through its iterator; on_token is not accepted")
        return _Stream(self, None, kwargs, chat=messages)


class _Stream:
    def __init__(self, ctx, prompt, kwargs, chat=None):
        """prompt for Context.generate, or chat (messages) for Context.chat."""
        self._q = queue.Queue()
        self._stop = threading.Event()
        self.result = None
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        # with tools the raw reply holds the call syntax: its parsed text comes at the end
        whole = chat is not None and bool(kwargs.get("tools")) and kwargs.get("tool_choice") != "none"

        def on_token(_tok, piece):
            text = "" if whole else decoder.decode(piece)
            if text:
                self._q.put(("piece", text))
            return not self._stop.is_set()

        def run():
            try:
                if chat is None:
                    self.result = ctx.generate(prompt, on_token=on_token, **kwargs)
                else:
                    self.result = ctx.chat(chat, on_token=on_token, **kwargs)
                tail = self.result.text if whole else decoder.decode(b"", final=True)
                if tail:
                    self._q.put(("piece", tail))
                self._q.put(("done", None))
            except BaseException as e:
                self._q.put(("error", e))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        kind, value = self._q.get()
        if kind == "piece":
            return value
        self._thread.join()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._q.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _chat_params(messages, tools, template_vars, add_generation_prompt, tool_choice=None, parallel_tool_calls=True):
    """messages as the C API's JSON text, and a ChatParams for the rest (with what it points to)."""
    if isinstance(messages, (str, bytes, dict)) or not hasattr(messages, "__iter__"):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    messages = list(messages)
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise TypeError(f"messages[{i}] must be a dict, not {type(m).__name__}")
    if not isinstance(template_vars, dict):
        raise TypeError("template variables must be a dict")
    try:
        m = json.dumps(messages, ensure_ascii=False, allow_nan=False).encode("utf-8")
        t = None if tools is None else json.dumps(list(tools), ensure_ascii=False, allow_nan=False).encode("utf-8")
        v = json.dumps(template_vars, ensure_ascii=False, allow_nan=False).encode("utf-8") if template_vars else None
    except (TypeError, ValueError) as e:
        raise TypeError(f"messages, tools and template variables must be JSON-serializable: {e}") from None
    p = _lib.lib.hmst_chat_default_params()
    p.add_generation_prompt = bool(add_generation_prompt)
    p.tools_json = t
    p.template_vars_json = v
    c = None
    if tool_choice is not None:
        if isinstance(tool_choice, dict):
            c = json.dumps(tool_choice, ensure_ascii=False).encode("utf-8")
        elif isinstance(tool_choice, str):
            c = tool_choice.encode("utf-8")
        else:
            raise TypeError("tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}")
    p.tool_choice = c
    p.parallel_tool_calls = bool(parallel_tool_calls)
    return m, p, [t, v, c]
