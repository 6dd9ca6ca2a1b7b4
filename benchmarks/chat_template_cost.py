#!/usr/bin/env python3
"""What rendering a chat costs: hmst's Jinja interpreter (`hmst-bench chat-template`) against
jinja2 as Hugging Face transformers runs it (a sandboxed environment, trim_blocks, lstrip_blocks,
the template compiled once), on the same templates and conversations, in one run. The templates
are the family templates of Tests/Golden/chat_template/cases.json (written for the tests in the
style of ChatML, Llama 3, Mistral with tools, and a tool-calling one); conversations of 4, 64
and 512 messages. Both sides must give the same text.
    python3 benchmarks/chat_template_cost.py [--bench .build/release/hmst-bench] [--rounds 200]
Needs jinja2 (pip install jinja2). One JSON line per template and conversation length.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = {"chatml": "chatml_sys_user_gen", "header": "header_sys_user_gen",
            "mistralish_tools": "mistralish_tools", "toolcalls": "toolcalls_with_tools_gen"}


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: \
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    def raise_exception(m):
        raise jinja2.exceptions.TemplateError(m)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime(2026, 12, 6, 10, 0).strftime(f)
    return env


def conversation(base, n):
    """n messages: the case's system message (if any), then user/assistant turns cycling through its own."""
    system = [m for m in base if m["role"] == "system"][:1]
    turns = [m for m in base if m["role"] != "system"] or [{"role": "user", "content": "hi"}]
    out = list(system)
    while len(out) < n:
        out.append(turns[(len(out) - len(system)) % len(turns)])
    # the last message is the user's
    while out and out[-1]["role"] != "user":
        out.pop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(ROOT, ".build", "release", "hmst-bench"))
    ap.add_argument("--rounds", type=int, default=200)
    a = ap.parse_args()
    cases = {c["name"]: c for c in json.load(open(os.path.join(ROOT, "Tests", "Golden", "chat_template", "cases.json")))["cases"]}
    env = environment()
    with tempfile.TemporaryDirectory() as d:
        for family, case in FAMILIES.items():
            c = cases[case]
            tpath = os.path.join(d, family + ".jinja")
            open(tpath, "w").write(c["template"])
            compiled = env.from_string(c["template"])
            for n in (4, 64, 512):
                msgs = conversation(c["vars"]["messages"], n)
                variables = {"messages": msgs, "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>"}
                if "tools" in c["vars"]:
                    variables["tools"] = c["vars"]["tools"]
                mpath = os.path.join(d, "m.json")
                json.dump({"messages": msgs, **({"tools": variables["tools"]} if "tools" in variables else {})}, open(mpath, "w"))
                out = subprocess.run([a.bench, "chat-template", "--template", tpath, "--messages", mpath, "--rounds", str(a.rounds)],
                                     capture_output=True, text=True, check=True).stdout
                h = json.loads(out.strip().splitlines()[-1])
                times = []
                for _ in range(a.rounds):
                    t = time.perf_counter()
                    text = compiled.render(**variables)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                same = len(text.encode()) == h["prompt_bytes"]
                print(json.dumps({"bench": "chat_template", "template": family, "messages": len(msgs),
                                  "prompt_bytes": h["prompt_bytes"], "hmst_ms_median": round(h["render_ms_median"], 4),
                                  "jinja2_ms_median": round(times[len(times) // 2], 4),
                                  "hmst_vs_jinja2": round(times[len(times) // 2] / max(1e-9, h["render_ms_median"]), 2),
                                  "hmst_parse_ms": round(h["parse_ms"], 3), "same_length": same}))


if __name__ == "__main__":
    main()
