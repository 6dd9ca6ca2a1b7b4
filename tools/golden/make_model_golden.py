#!/usr/bin/env python3
"""Writes the golden files the Swift model tests compare against, using Hugging Face
transformers' MixtralForCausalLM as the reference implementation.

For each case it saves a random tiny Mixtral with `save_pretrained` (so hmst is tested on what
transformers writes: config.json + model.safetensors) and the reference outputs for a fixed
token sequence:
  logits.bin      float32 [T, V] logits of a full forward pass
  routing.json    per layer, per token: the top-k experts and their renormalised gates
Binary files start with the header  b"HMSTGOLD" | uint32 version=1 | uint32 ndim | uint32 dims[ndim]

Needs torch and transformers (`pip install torch==2.13.0+cpu transformers`); CI does not run
this script, it only reads the committed outputs. Re-run it to refresh them:
    python3 tools/golden/make_model_golden.py Tests/Golden/model
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from transformers import MixtralConfig, MixtralForCausalLM

CASES = {
    # name: (config overrides, tokens)
    "tiny_untied": (dict(tie_word_embeddings=False, rope_theta=10000.0), [1, 5, 17, 90, 3, 3, 42, 7, 64, 11, 0, 95]),
    "tiny_tied": (dict(tie_word_embeddings=True, rope_theta=500000.0), [2, 4, 8, 16, 32, 64, 1, 3]),
}


def write_bin(path, array):
    array = np.ascontiguousarray(array, dtype=np.float32)
    with open(path, "wb") as f:
        f.write(b"HMSTGOLD")
        f.write(struct.pack("<II", 1, array.ndim))
        f.write(struct.pack(f"<{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def make_case(out_dir, name, overrides, tokens, seed):
    torch.manual_seed(seed)
    cfg = MixtralConfig(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, num_local_experts=8,
        num_experts_per_tok=2, router_aux_loss_coef=0.001, **overrides)
    cfg._attn_implementation = "eager"
    model = MixtralForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger weights than the default init: non-trivial logits
            p.normal_(0.0, 0.2)
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    path = os.path.join(out_dir, name)
    model.save_pretrained(path, safe_serialization=True)
    ids = torch.tensor([tokens])
    with torch.no_grad():
        out = model(ids, output_router_logits=True)
    write_bin(os.path.join(path, "logits.bin"), out.logits[0].numpy())
    routing = []
    for layer_logits in out.router_logits:  # [T, E] per layer
        probs = torch.softmax(layer_logits.float(), dim=-1)
        w, e = torch.topk(probs, cfg.num_experts_per_tok, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        routing.append({"experts": e.tolist(), "gates": w.tolist()})
    with open(os.path.join(path, "reference.json"), "w") as f:
        json.dump({"tokens": tokens, "routing": routing, "transformers": __import__("transformers").__version__,
                   "torch": torch.__version__}, f)
    print(f"{name}: logits {tuple(out.logits[0].shape)} -> {path}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "Tests/Golden/model"
    os.makedirs(out_dir, exist_ok=True)
    for i, (name, (overrides, tokens)) in enumerate(CASES.items()):
        make_case(out_dir, name, overrides, tokens, seed=1234 + i)


if __name__ == "__main__":
    main()
