#!/usr/bin/env python3
"""Checks that a checkpoint hmst writes loads in Hugging Face transformers and computes the
same logits there as in hmst (the reverse direction of tools/golden/make_model_golden.py).

Needs torch + transformers and the hmst Python package (HMST_LIBRARY or pip-installed):
    python3 tools/golden/check_transformers_interop.py [--preset micro] [--dtype f32|bf16]
Prints one JSON line with the max |logit difference|; exits 1 if above tolerance.
"""
import argparse
import json
import sys
import tempfile

import numpy as np
import torch
from transformers import MixtralForCausalLM

import hmst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="micro")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    tokens = [3, 141, 59, 26, 535, 89, 79, 323, 846, 264]
    with tempfile.TemporaryDirectory() as d:
        with hmst.Model.random(args.preset, seed=args.seed) as m:
            m.save(d, dtype=args.dtype)
        with hmst.Model(d) as m, m.context() as ctx:
            ours = ctx.forward(tokens)
        model = MixtralForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            theirs = model(torch.tensor([tokens])).logits[0].numpy()
    diff = float(np.abs(ours - theirs).max())
    tol = 1e-4 if args.dtype == "f32" else 2e-3
    print(json.dumps({"preset": args.preset, "dtype": args.dtype, "max_abs_logit_diff": diff,
                      "logit_scale": float(np.abs(theirs).max()), "ok": diff < tol}))
    return 0 if diff < tol else 1


if __name__ == "__main__":
    sys.exit(main())
