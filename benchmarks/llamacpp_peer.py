#!/usr/bin/env python3
"""hmst against llama.cpp (a benchmark peer, never a dependency) on the same random model.

    HMST_LIBRARY=$PWD/build/lib/libhmst.so.0.1.0 PYTHONPATH=$PWD/bindings/python \\
    nice -n 10 python3 benchmarks/llamacpp_peer.py --llamacpp /tmp/llama.cpp-src \\
        [--cases micro,dense512,moe512] [--rounds 3] [--threads 1,2] [--timeout 150] \\
        [--omp-wait-policy passive|default] [--llamacpp-label TEXT] [--out FILE]

What it does, per case (the shapes of hmst-bench: dense512 and moe512 are llama.cpp's reference
shapes, hidden 512, 8 layers, FFN 1536, vocab 32000; micro is hmst's smallest preset shape):

1. Random weights (numpy, seeded) written once as an HF-style checkpoint directory (config.json +
   f32 model.safetensors, Mixtral layout; the dense case is one expert, top-1) and as llama.cpp
   GGUF files of the "llama" architecture in f32, f16, bf16 and q8_0, with the `gguf` package
   (pip install gguf). The GGUF layout is llama.cpp's converter's: q/k rows permuted per head
   into interleaved pairs, experts stacked as ffn_{gate,down,up}_exps, norms and the router f32,
   every other matrix (embeddings and output included) in the file's type. A byte-level BPE
   vocabulary of the case's size (256 bytes, two-character merges, <s> and </s>) makes the files
   loadable; the benchmark feeds random token ids.
2. Checks that both programs run the same model: hmst's logits from the safetensors directory
   against hmst's from the f32 GGUF (validates the conversion and hmst's GGUF import), and
   llama.cpp's logits (benchmarks/llamacpp-peer/logits.cpp, compiled here against the llama.cpp
   build) against hmst's on the same GGUF file for f32, f16, bf16 and q8_0. One decode step per token,
   24 tokens; printed as "check" lines (max |diff| / max |logit|, and top-1 agreement).
3. Speed, `--rounds` rounds; in each round every (case, file) is timed once by llama-bench
   (`-p 512 -n 128 -d 0,512 -r 1 -t T --repack 0`, its own warm-up, its defaults otherwise: f16
   KV cache, flash attention auto; --repack 0 because ggml's AMX q8_0 kernel faults with SIGILL
   on this project's VM) and once by hmst (its Python bindings in a fresh process: the same
   warm-up, then the same four tests: pp512 and tg128 from an empty context and after a
   512-token prompt that is not timed, tokens/s = tokens / wall time of the test; its KV cache
   bf16, `--hmst-kv`, as llama.cpp's is 16-bit: f32 was the default before session 25), the side that
   goes first alternating by round. hmst reads the same GGUF files: f32, f16 and bf16 as stored
   (mmap), q8_0 repacked into its int8 layout (the same quantized values llama.cpp uses).
   The 16-bit cells are f16 against f16 (the common format) and bf16 against bf16 (until session
   30 hmst widened f16 to f32, and its bf16 stood in against llama.cpp's f16).
   --omp-wait-policy passive sets OMP_WAIT_POLICY for both sides' processes: it keeps 2-thread
   llama.cpp from collapsing when another tenant takes a core (its OpenMP barriers spin), but
   halves its 2-thread decode on these small models, so the default leaves it unset. A run
   longer than --timeout is recorded as an "error" line and left out of the medians.

Output: JSON lines on stdout and in --out: "check" lines, "raw" lines (one per side, round, test)
and "cell" lines (median, min and max over rounds for each side and the hmst / llama.cpp ratio of
the medians; ratio_paired_*: the median, min and max over rounds of each round's own ratio, its two
runs of a file being adjacent in time).
Needs a llama.cpp build tree with llama-bench and static libraries (cmake -B build
-DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF && cmake --build build
--target llama-bench); without it or without `gguf` the script says so and exits 0.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from startup_ttft import evict_file  # noqa: E402

CASES = {
    # name: (C, L, H, KV, F, E, K, V)
    "micro": (256, 4, 4, 2, 512, 8, 2, 4096),
    "dense512": (512, 8, 8, 8, 1536, 1, 1, 32000),
    "moe512": (512, 8, 8, 8, 1536, 8, 2, 32000),
}
# (label, GGUF file type, hmst's name for it); both sides run every file
FILES = [
    ("f32", "f32", "f32"),
    ("16bit", "f16", "f16"),
    ("16bit", "bf16", "bf16"),
    ("8bit", "q8_0", "int8"),
]
TESTS = [("pp512", 512, 0, 0), ("tg128", 0, 128, 0), ("pp512@d512", 512, 0, 512), ("tg128@d512", 0, 128, 512)]


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown").strip()
    return f"{name} (family {fields.get('CPU family', '?').strip()} model {fields.get('Model', '?').strip()}, {os.cpu_count()} cpus)"


def emit(obj, out):
    line = json.dumps(obj)
    print(line, flush=True)
    if out:
        out.write(line + "\n")
        out.flush()


# ---- the model --------------------------------------------------------------------------------

def random_weights(case, seed=1):
    """HF (Mixtral) names -> float32 arrays."""
    import numpy as np
    C, L, H, KV, F, E, K, V = CASES[case]
    Dh = C // H
    rng = np.random.default_rng(seed)

    def mat(rows, cols, std=0.02):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(np.float32)

    def norm(n):
        return (1 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    w = {"model.embed_tokens.weight": mat(V, C, 1.0)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = mat(H * Dh, C, 0.05)
        w[p + "self_attn.k_proj.weight"] = mat(KV * Dh, C, 0.05)
        w[p + "self_attn.v_proj.weight"] = mat(KV * Dh, C)
        w[p + "self_attn.o_proj.weight"] = mat(C, H * Dh)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        w[p + "block_sparse_moe.gate.weight"] = mat(E, C, 0.5)
        for e in range(E):
            ep = p + f"block_sparse_moe.experts.{e}."
            w[ep + "w1.weight"] = mat(F, C)
            w[ep + "w2.weight"] = mat(C, F)
            w[ep + "w3.weight"] = mat(F, C)
    w["model.norm.weight"] = norm(C)
    w["lm_head.weight"] = mat(V, C, 0.05)
    return w


def write_checkpoint(case, w, d):
    from safetensors.numpy import save_file
    C, L, H, KV, F, E, K, V = CASES[case]
    os.makedirs(d, exist_ok=True)
    config = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": V, "hidden_size": C,
              "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV,
              "head_dim": C // H, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "num_local_experts": E, "num_experts_per_tok": K, "tie_word_embeddings": False}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    save_file(w, os.path.join(d, "model.safetensors"))


def byte_chars():
    """GPT-2's byte -> printable character table (bytes that print as themselves keep their
    character, the others take the characters from U+0100 on, in byte order)."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    table, extra = [], 0
    for b in range(256):
        if b in keep:
            table.append(chr(b))
        else:
            table.append(chr(256 + extra))
            extra += 1
    return table


def vocabulary(V):
    """V tokens of a byte-level BPE vocabulary: the 256 byte characters, two-character merges
    in a fixed order, and <s>, </s> as control tokens at the end."""
    chars = byte_chars()
    tokens, merges = list(chars), []
    n_merged = V - 256 - 2
    for i in range(n_merged):
        a, b = chars[i // 256], chars[i % 256]
        tokens.append(a + b)
        merges.append(f"{a} {b}")
    tokens += ["<s>", "</s>"]
    types = [1] * (V - 2) + [3, 3]
    return tokens, merges, types


def permute_heads(w, heads):
    """HF rotate-half rows -> llama.cpp's interleaved pairs: within each head, row 2i + j
    holds HF row j * Dh/2 + i."""
    rows, cols = w.shape
    dh = rows // heads
    return w.reshape(heads, 2, dh // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def write_gguf(case, w, path, ftype):
    import gguf
    import numpy as np
    from gguf import quants
    C, L, H, KV, F, E, K, V = CASES[case]
    Q = gguf.GGMLQuantizationType
    qtype = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}[ftype]
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[ftype]
    wr = gguf.GGUFWriter(path + ".tmp", arch="llama")
    wr.add_name(f"hmst-random-{case}")
    wr.add_context_length(2048)
    wr.add_embedding_length(C)
    wr.add_block_count(L)
    wr.add_feed_forward_length(F)
    wr.add_head_count(H)
    wr.add_head_count_kv(KV)
    wr.add_rope_dimension_count(C // H)
    wr.add_rope_freq_base(10000.0)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_vocab_size(V)
    if E > 1:
        wr.add_expert_count(E)
        wr.add_expert_used_count(K)
    wr.add_file_type(int(file_type))
    tokens, merges, types = vocabulary(V)
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("default")
    wr.add_token_list(tokens)
    wr.add_token_merges(merges)
    wr.add_token_types(types)
    wr.add_bos_token_id(V - 2)
    wr.add_eos_token_id(V - 1)
    wr.add_add_bos_token(False)

    def put(name, a, keep_f32=False):
        a = np.ascontiguousarray(a, dtype=np.float32)
        if keep_f32 or a.ndim == 1 or qtype == Q.F32:
            wr.add_tensor(name, a)
        elif qtype == Q.F16:
            wr.add_tensor(name, a.astype(np.float16))
        elif qtype == Q.BF16:  # round to nearest even, as torch and llama.cpp do (gguf's own is slow)
            u = a.view(np.uint32)
            b16 = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            wr.add_tensor(name, b16.view(np.uint8), raw_dtype=qtype)
        else:
            wr.add_tensor(name, quants.quantize(a, qtype), raw_dtype=qtype)

    put("token_embd.weight", w["model.embed_tokens.weight"])
    for l in range(L):
        p, b = f"model.layers.{l}.", f"blk.{l}."
        put(b + "attn_norm.weight", w[p + "input_layernorm.weight"])
        put(b + "attn_q.weight", permute_heads(w[p + "self_attn.q_proj.weight"], H))
        put(b + "attn_k.weight", permute_heads(w[p + "self_attn.k_proj.weight"], KV))
        put(b + "attn_v.weight", w[p + "self_attn.v_proj.weight"])
        put(b + "attn_output.weight", w[p + "self_attn.o_proj.weight"])
        put(b + "ffn_norm.weight", w[p + "post_attention_layernorm.weight"])
        ex = p + "block_sparse_moe.experts."
        if E == 1:
            put(b + "ffn_gate.weight", w[ex + "0.w1.weight"])
            put(b + "ffn_down.weight", w[ex + "0.w2.weight"])
            put(b + "ffn_up.weight", w[ex + "0.w3.weight"])
        else:
            put(b + "ffn_gate_inp.weight", w[p + "block_sparse_moe.gate.weight"], keep_f32=True)
            for role, hf in (("ffn_gate_exps", "w1"), ("ffn_down_exps", "w2"), ("ffn_up_exps", "w3")):
                put(b + role + ".weight", np.stack([w[ex + f"{e}.{hf}.weight"] for e in range(E)]))
    put("output_norm.weight", w["model.norm.weight"])
    put("output.weight", w["lm_head.weight"])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    os.replace(path + ".tmp", path)


def prepare(case, workdir):
    """Writes the checkpoint and the GGUF files once (kept in workdir between runs)."""
    d = os.path.join(workdir, case)
    files = {t: os.path.join(d, f"{case}-{t}.gguf") for t in ("f32", "f16", "bf16", "q8_0")}
    ckpt = os.path.join(d, "hf")
    if all(os.path.exists(p) for p in files.values()) and os.path.exists(os.path.join(ckpt, "model.safetensors")):
        return ckpt, files
    w = random_weights(case)
    write_checkpoint(case, w, ckpt)
    for t, p in files.items():
        write_gguf(case, w, p, t)
    return ckpt, files


# ---- hmst side (child processes, so hmst's threads and llama.cpp's never share a process) ------

def hmst_child_logits(args):
    import numpy as np
    import hmst
    toks = [int(t) for t in args.tokens.split(",")]
    with hmst.Model(args.model, load_tokenizer=False, weights=args.weights) as m, \
            m.context(n_ctx=len(toks) + 16, n_batch=64, n_threads=args.threads) as ctx:
        rows = []
        for t in toks:
            ctx.eval([t])
            rows.append(ctx.logits())
    np.save(args.out, np.stack(rows))


def hmst_child_bench(args):
    import numpy as np
    import hmst
    rng = np.random.default_rng(args.seed)
    with hmst.Model(args.model, load_tokenizer=False) as m:
        V = m.n_vocab
        need = max(p + g + d for _, p, g, d in TESTS)
        with m.context(n_ctx=need + 8, n_batch=512, n_threads=args.threads, kv_cache=args.kv) as ctx:
            def toks(n):
                return rng.integers(0, V, n, dtype=np.int32)
            # warm-up as llama-bench does it: a prompt of min(n_batch, n_prompt) tokens, then one token
            ctx.eval(toks(512))
            ctx.eval(toks(1))
            out = {}
            for name, n_prompt, n_gen, depth in TESTS:
                ctx.reset()
                if depth:
                    ctx.eval(toks(depth))
                t0 = time.perf_counter()
                if n_prompt:
                    ctx.eval(toks(n_prompt))
                tok = int(rng.integers(0, V))
                for _ in range(n_gen):
                    ctx.eval([tok])
                    tok = int(rng.integers(0, V))
                dt = time.perf_counter() - t0
                out[name] = (n_prompt + n_gen) / dt
    print(json.dumps(out))


def child_env(threads):
    """hmst's children: OpenBLAS (prefill GEMMs) on the same number of threads. llama.cpp's
    programs run with the environment as it is (their -t sets their OpenMP threads)."""
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def hmst_bench(path, threads, seed, timeout, kv):
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "_hmst-bench", "--model", path, "--threads", str(threads), "--kv", kv,
                        "--seed", str(seed)], capture_output=True, text=True, env=child_env(threads), timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"hmst bench on {path} failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def hmst_logits(path, weights, tokens, threads, out):
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "_hmst-logits", "--model", path, "--weights", weights,
                        "--tokens", ",".join(map(str, tokens)), "--threads", str(threads), "--out", out],
                       capture_output=True, text=True, env=child_env(threads))
    if r.returncode != 0:
        raise RuntimeError(f"hmst logits on {path} failed: {r.stderr.strip()[-2000:]}")
    import numpy as np
    return np.load(out)


# ---- llama.cpp side ---------------------------------------------------------------------------

def find_build(root):
    for b in ("build/bin/llama-bench", "bin/llama-bench"):
        if os.path.exists(os.path.join(root, b)):
            return os.path.join(root, b)
    return None


def llamacpp_commit(root, bench):
    r = subprocess.run([bench, "--version"], capture_output=True, text=True)
    text = (r.stdout + r.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def build_logits_tool(root, workdir):
    """Compiles llamacpp-peer/logits.cpp against the llama.cpp build tree (static libraries)."""
    exe = os.path.join(workdir, "llamacpp_logits")
    src = os.path.join(HERE, "llamacpp-peer", "logits.cpp")
    if os.path.exists(exe) and os.path.getmtime(exe) > os.path.getmtime(src):
        return exe
    b = os.path.join(root, "build")
    libs = [os.path.join(b, p) for p in ("src/libllama.a", "ggml/src/libggml.a", "ggml/src/libggml-cpu.a", "ggml/src/libggml-base.a")]
    missing = [p for p in libs if not os.path.exists(p)]
    if missing:
        raise RuntimeError(f"llama.cpp static libraries missing ({', '.join(missing)}); build with -DBUILD_SHARED_LIBS=OFF")
    cmd = ["c++", "-O2", "-std=c++17", src, "-I", os.path.join(root, "include"), "-I", os.path.join(root, "ggml/include"),
           *libs, "-fopenmp", "-lpthread", "-ldl", "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("building llamacpp_logits failed: " + r.stderr[-2000:])
    return exe


def llamacpp_logits(tool, path, tokens, threads, out, vocab):
    import numpy as np
    r = subprocess.run([tool, path, out, str(threads), *map(str, tokens)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llamacpp_logits on {path} failed: {r.stderr.strip()[-2000:]}")
    return np.fromfile(out, dtype=np.float32).reshape(len(tokens), vocab)


def llama_bench(bench, path, threads, timeout):
    r = subprocess.run([bench, "-m", path, "-t", str(threads), "-p", "512", "-n", "128", "-d", "0,512", "-r", "1",
                        "--repack", "0", "-o", "jsonl"], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"llama-bench on {path} failed: {r.stderr.strip()[-2000:]}")
    out, meta = {}, {}
    for line in r.stdout.splitlines():
        if not line.startswith("{"):
            continue
        j = json.loads(line)
        name = (f"pp{j['n_prompt']}" if j["n_prompt"] else f"tg{j['n_gen']}") + (f"@d{j['n_depth']}" if j["n_depth"] else "")
        out[name] = j["avg_ts"]
        meta = {k: j.get(k) for k in ("build_commit", "build_number", "type_k", "type_v", "flash_attn", "n_batch", "n_ubatch",
                                      "cpu_info", "model_type", "model_size")}
    return out, meta


# ---- main -------------------------------------------------------------------------------------

def compare(a, b):
    import numpy as np
    scale = float(np.abs(a).max())
    return {"max_abs_diff_rel": round(float(np.abs(a - b).max()) / scale, 7),
            "top1_agree": round(float((a.argmax(1) == b.argmax(1)).mean()), 3), "max_abs_logit": round(scale, 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = sys.argv[1] if len(sys.argv) > 1 else ""
    if sub in ("_hmst-bench", "_hmst-logits"):
        ap.add_argument("mode")
        ap.add_argument("--model", required=True)
        ap.add_argument("--threads", type=int, default=2)
        ap.add_argument("--seed", type=int, default=1)
        ap.add_argument("--weights", default="as_stored")
        ap.add_argument("--tokens", default="")
        ap.add_argument("--out", default="")
        ap.add_argument("--kv", default="bf16")
        a = ap.parse_args()
        (hmst_child_bench if sub == "_hmst-bench" else hmst_child_logits)(a)
        return 0
    ap.add_argument("--llamacpp", default=os.environ.get("LLAMACPP_DIR", "/tmp/llama.cpp-src"),
                    help="llama.cpp source tree with a cmake build in build/")
    ap.add_argument("--cases", default="dense512,moe512")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="2", help="thread counts, e.g. 1,2")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed to one side's run of one file")
    ap.add_argument("--omp-wait-policy", default="default",
                    help="OMP_WAIT_POLICY for both sides' processes ('default' leaves it unset); see the README")
    ap.add_argument("--workdir", default="/tmp/hmst-llamacpp-peer", help="where the models are written (about 5 GB for moe512)")
    ap.add_argument("--llamacpp-label", default="", help="what the llama.cpp tree is (its commit), for the output lines")
    ap.add_argument("--out", default="")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--cold", action="store_true",
                    help="drop the model file from the page cache before every side's run: each side starts cold, "
                         "as after a download or a reboot, and its own mapping decides the page size the file is cached in")
    ap.add_argument("--hmst-kv", choices=("f32", "bf16"), default="bf16",
                    help="hmst's KV cache (llama.cpp's is f16 by default)")
    ap.add_argument("--only-check", action="store_true")
    a = ap.parse_args()

    try:
        import gguf  # noqa: F401
    except ImportError:
        print("llamacpp_peer: the gguf package is missing (pip install gguf); nothing measured")
        return 0
    bench = find_build(a.llamacpp)
    if bench is None:
        print(f"llamacpp_peer: no llama-bench under {a.llamacpp}/build/bin (build llama.cpp first); nothing measured")
        return 0
    os.makedirs(a.workdir, exist_ok=True)
    out = open(a.out, "a") if a.out else None
    cases = [c for c in a.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r} (one of {', '.join(CASES)})")
    threads_list = [int(t) for t in a.threads.split(",") if t]
    check_threads = threads_list[-1]
    common = {"bench": "llamacpp_peer", "cpu": cpu_model(),
              "llamacpp_version": llamacpp_commit(a.llamacpp, bench)}
    if a.llamacpp_label:
        common["llamacpp_source"] = a.llamacpp_label
    if a.omp_wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = a.omp_wait_policy
    common["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "unset")
    common["page_cache"] = "cold" if a.cold else "as found"
    # the libhmst the hmst side loads (a stale installed copy once measured an older hmst):
    # named on every line, with its modification time
    probe = subprocess.run([sys.executable, "-c", "import hmst._lib as l, os; print(l.path); print(int(os.path.getmtime(l.path)))"],
                           capture_output=True, text=True, env=child_env(check_threads))
    if probe.returncode == 0:
        lib_path, lib_mtime = probe.stdout.split()[:2]
        common["hmst_library"] = lib_path
        common["hmst_library_mtime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(lib_mtime)))
        print(f"# hmst side: {lib_path} ({common['hmst_library_mtime']})", file=sys.stderr, flush=True)
    paths = {}
    for c in cases:
        t0 = time.time()
        paths[c] = prepare(c, a.workdir)
        print(f"# {c}: model files ready in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)

    if not a.skip_check:
        import numpy as np
        tool = build_logits_tool(a.llamacpp, a.workdir)
        for c in cases:
            ckpt, files = paths[c]
            V = CASES[c][7]
            toks = [int(t) for t in np.random.default_rng(7).integers(0, V - 2, 24)]
            tmp = os.path.join(a.workdir, "logits.npy")
            ref = hmst_logits(ckpt, "as_stored", toks, check_threads, tmp)
            emit({**common, "kind": "check", "threads": check_threads, "case": c, "a": "hmst safetensors f32", "b": "hmst gguf f32",
                  **compare(ref, hmst_logits(files["f32"], "as_stored", toks, check_threads, tmp))}, out)
            emit({**common, "kind": "check", "threads": check_threads, "case": c, "a": "hmst safetensors int8 (quantized at load)", "b": "hmst gguf q8_0",
                  **compare(hmst_logits(ckpt, "int8", toks, check_threads, tmp),
                            hmst_logits(files["q8_0"], "as_stored", toks, check_threads, tmp))}, out)
            for t in ("f32", "f16", "bf16", "q8_0"):
                h = hmst_logits(files[t], "as_stored", toks, check_threads, tmp)
                l = llamacpp_logits(tool, files[t], toks, check_threads, os.path.join(a.workdir, "logits.bin"), V)
                emit({**common, "kind": "check", "threads": check_threads, "case": c, "a": f"hmst gguf {t}", "b": f"llama.cpp gguf {t}", **compare(h, l)}, out)
            l16 = llamacpp_logits(tool, files["f16"], toks, check_threads, os.path.join(a.workdir, "logits.bin"), V)
            emit({**common, "kind": "check", "threads": check_threads, "case": c, "a": "hmst safetensors f32", "b": "llama.cpp gguf f16", **compare(ref, l16)}, out)
    if a.only_check:
        return 0

    by_round = {}  # (threads, case, side, ftype, test) -> {round: tok/s}
    meta = {}
    for rnd in range(a.rounds):
        for threads in threads_list:
            for c in cases:
                _, files = paths[c]
                jobs = []
                for _, ftype, _ in FILES:
                    jobs += [("llama.cpp", ftype), ("hmst", ftype)]
                if rnd % 2 == 1:
                    jobs.reverse()
                for side, ftype in jobs:
                    if a.cold:   # its own mapping then decides how the kernel caches the file (hmst: 2 MiB folios)
                        evict_file(files[ftype])
                    load0 = os.getloadavg()[0]
                    t0 = time.time()
                    try:
                        if side == "hmst":
                            res = hmst_bench(files[ftype], threads, rnd + 1, a.timeout, a.hmst_kv)
                        else:
                            res, meta = llama_bench(bench, files[ftype], threads, a.timeout)
                    except subprocess.TimeoutExpired:
                        emit({**common, "kind": "raw", "round": rnd, "threads": threads, "case": c, "side": side, "file": ftype,
                              "error": f"timed out after {a.timeout} s", "loadavg_1m_before": round(load0, 2)}, out)
                        continue
                    for test, v in res.items():
                        by_round.setdefault((threads, c, side, ftype, test), {})[rnd] = v
                        emit({**common, "kind": "raw", "round": rnd, "threads": threads, "case": c, "side": side, "file": ftype,
                              "test": test, "tok_s": round(v, 2), "loadavg_1m_before": round(load0, 2),
                              "wall_s": round(time.time() - t0, 1)}, out)

    def stats(prefix, v):
        return {prefix + "median": round(statistics.median(v), 2) if v else None, prefix + "min": round(min(v), 2) if v else None,
                prefix + "max": round(max(v), 2) if v else None, prefix + "n": len(v)}
    for threads in threads_list:
        for c in cases:
            for label, ftype, hname in FILES:
                for test, *_ in TESTS:
                    lr = by_round.get((threads, c, "llama.cpp", ftype, test), {})
                    hr = by_round.get((threads, c, "hmst", ftype, test), {})
                    lv, hv = list(lr.values()), list(hr.values())
                    cell = {**common, "kind": "cell", "threads": threads, "case": c, "precision": label, "test": test,
                            "rounds": a.rounds, "llamacpp_type": ftype, **stats("llamacpp_tok_s_", lv),
                            "llamacpp_kv": f"{meta.get('type_k')}/{meta.get('type_v')}", "llamacpp_flash_attn": meta.get("flash_attn"),
                            "hmst_weights": hname, "hmst_kv": a.hmst_kv, **stats("hmst_tok_s_", hv)}
                    if lv and hv:
                        cell["ratio_hmst_over_llamacpp"] = round(statistics.median(hv) / statistics.median(lv), 3)
                    # each round's two runs of a file are adjacent in time: their ratio leaves out most of
                    # the host's drift between rounds (decode follows its memory rate, which moves 20-40%)
                    paired = [hr[r] / lr[r] for r in sorted(hr) if r in lr and lr[r] > 0]
                    if paired:
                        cell.update({"ratio_paired_median": round(statistics.median(paired), 3),
                                     "ratio_paired_min": round(min(paired), 3), "ratio_paired_max": round(max(paired), 3)})
                    emit(cell, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
