#!/usr/bin/env python3
"""Prompt caching in a multi-turn chat: time to first token and prompt tokens evaluated per turn,
with the context's cache kept between turns (what Context.chat / hmst_chat_generate and the
server do by default: only the new messages are evaluated) against a fresh context each turn
(Context.reset() first: the whole conversation evaluated again, as before prompt caching), in
one run, on the same conversation and model.

    HMST_LIBRARY=$PWD/build/lib/libhmst.so PYTHONPATH=$PWD/bindings/python \\
        python3 benchmarks/prompt_cache.py [--preset tiny] [--turns 8] [--out results.jsonl]

The model: a preset with random weights (bf16), the test fixture's tokenizer
(build/fixtures/micro/tokenizer.json, `make fixtures`) and a ChatML template, written once into
--dir. The conversation: a system prompt of about --system-tokens tokens, then --turns user
messages of about 40 tokens, each answered with exactly --reply tokens (ignore_eos). One JSON
line per mode and turn, then one summary line per mode, each naming the CPU. Also checks that
both modes give the same replies (greedy) and that the cached mode evaluates only the new part.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import time

import hmst

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHATML = ("{% for m in messages %}<|endoftext|>{{ m.role }}\n{{ m.content }}\n{% endfor %}"
          "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}")
WORDS = ("the sea ships harbour light keeper storm night morning village river bridge market bread "
         "fisher boat wind rain stone wall garden path hill tower bell road letter friend").split()


def cpu_model():
    """The model name with its family and model numbers (Intel's "Xeon Processor" names no generation)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                fields.setdefault(k.strip(), v.strip())
    except OSError:
        return platform.processor()
    return f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def text(n_words, seed):
    return " ".join(WORDS[(seed * 7 + i * 3 + i * i) % len(WORDS)] for i in range(n_words))


def checkpoint(directory, preset):
    if os.path.exists(os.path.join(directory, "model.safetensors")):
        return directory
    os.makedirs(directory, exist_ok=True)
    with hmst.Model.random(preset, seed=1) as m:
        m.save(directory, "bf16")
    shutil.copy(os.path.join(ROOT, "build", "fixtures", "micro", "tokenizer.json"), directory)
    with open(os.path.join(directory, "chat_template.jinja"), "w") as f:
        f.write(CHATML)
    return directory


def run(model, mode, args, n_threads):
    messages = [{"role": "system", "content": text(args.system_tokens // 2, 0)}]
    rows = []
    with model.context(n_ctx=args.n_ctx, n_threads=n_threads) as ctx:
        for turn in range(args.turns):
            messages.append({"role": "user", "content": text(20, turn + 1)})
            if mode == "fresh":
                ctx.reset()
            t0 = time.perf_counter()
            g = ctx.chat(messages, max_tokens=args.reply, temperature=0, ignore_eos=True)
            wall = (time.perf_counter() - t0) * 1000
            s = g.stats
            rows.append(dict(turn=turn + 1, prompt_tokens_total=s["prompt_tokens"] + s["cached_tokens"],
                             prompt_tokens_evaluated=s["prompt_tokens"], cached_tokens=s["cached_tokens"],
                             ttft_ms=round(s["time_to_first_token_ms"], 2), turn_ms=round(wall, 2), reply=g.text))
            messages.append({"role": "assistant", "content": g.text})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--dir", default="/tmp/hmst-prompt-cache-model")
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--system-tokens", type=int, default=400)
    ap.add_argument("--reply", type=int, default=16)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args()
    d = checkpoint(args.dir, args.preset)
    lines = []
    with hmst.Model(d) as model:
        results = {mode: run(model, mode, args, args.threads) for mode in ("cached", "fresh")}
    common = dict(bench="prompt_cache", cpu=cpu_model(), preset=args.preset, weights="bf16", threads=args.threads or os.cpu_count(),
                  system_tokens=args.system_tokens, reply_tokens=args.reply)
    same = [a["reply"] for a in results["cached"]] == [b["reply"] for b in results["fresh"]]
    for mode, rows in results.items():
        for r in rows:
            r = dict(r)
            r.pop("reply")
            lines.append(dict(common, mode=mode, **r))
    for mode, rows in results.items():
        later = rows[1:]
        lines.append(dict(common, mode=mode, summary=True, turns=len(rows),
                          prompt_tokens_evaluated=sum(r["prompt_tokens_evaluated"] for r in rows),
                          ttft_ms_median_after_first=round(statistics.median(r["ttft_ms"] for r in later), 2) if later else None,
                          ttft_ms_last=rows[-1]["ttft_ms"], total_ms=round(sum(r["turn_ms"] for r in rows), 1),
                          same_replies_as_other_mode=same))
    cached_ok = all(r["prompt_tokens_evaluated"] < r["prompt_tokens_total"] for r in results["cached"][1:])
    out = "\n".join(json.dumps(l) for l in lines) + "\n"
    print(out, end="")
    if args.out:
        with open(args.out, "a") as f:
            f.write(out)
    if not same or not cached_ok:
        raise SystemExit("prompt cache: the modes' replies differ, or a later turn evaluated its whole prompt")


if __name__ == "__main__":
    main()
