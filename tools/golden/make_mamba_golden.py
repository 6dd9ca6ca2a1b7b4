#!/usr/bin/env python3
"""Writes the golden files the Swift Mamba tests (Tests/HMSTCoreTests/SSMTests.swift) compare
against, using Hugging Face transformers' MambaMixer on its pure-torch path (no CUDA kernels,
sequential scan) as the reference.

One tiny random mixer (hidden 32, state 8, expand 2, conv 4, dt rank 4) and a 13-token input:
  config.json         the MambaConfig as transformers saves it
  model.safetensors   the mixer's nine tensors, named backbone.layers.0.mixer.<HF name>
  grads.safetensors   d(Σ out·dy)/dW for the same nine tensors (torch autograd)
  x.bin  [T, C]       input            out.bin [T, C]  output of a full forward, no cache
  dy.bin [T, C]       upstream grad    dx.bin  [T, C]  d(Σ out·dy)/dx
  ssm_state.bin [Di, N]   recurrent state after x (the cached prefill)
  conv_state.bin [Di, W]  conv window after x as transformers caches it (the last W inputs)
  step_x.bin [C], step_out.bin [C]   one more token through transformers' recurrent path
  step_ssm_state.bin [Di, N]         the state after it
  reference.json      shapes, tolerances, versions
Binary files start with  b"HMSTGOLD" | uint32 version=1 | uint32 ndim | uint32 dims[ndim],
then float32 little-endian data.

Needs torch, transformers and safetensors; CI only reads the committed outputs. Re-run:
    python3 tools/golden/make_mamba_golden.py Tests/Golden/mamba
"""
import json
import math
import os
import struct
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch hub kernels: the torch path is the reference

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import MambaConfig
from transformers.cache_utils import DynamicCache
from transformers.models.mamba.modeling_mamba import MambaMixer

PREFIX = "backbone.layers.0.mixer."
T = 13


def write_bin(path, array):
    array = np.ascontiguousarray(array, dtype=np.float32)
    with open(path, "wb") as f:
        f.write(b"HMSTGOLD")
        f.write(struct.pack("<II", 1, array.ndim))
        f.write(struct.pack(f"<{array.ndim}I", *array.shape))
        f.write(array.astype("<f4").tobytes())


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "Tests/Golden/mamba"
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(2024)
    cfg = MambaConfig(vocab_size=16, hidden_size=32, state_size=8, expand=2, conv_kernel=4, time_step_rank=4,
                      num_hidden_layers=1, use_conv_bias=True, use_bias=False, use_mambapy=False,
                      use_associative_scan=False)
    C, Di, N, W = cfg.hidden_size, cfg.intermediate_size, cfg.state_size, cfg.conv_kernel
    mixer = MambaMixer(cfg, layer_idx=0).eval()
    with torch.no_grad():
        # larger, more varied weights than the default init, so every term of the scan matters:
        # δ = softplus(...) mostly in [0.05, 1], A = -exp(A_log) spread around -(1...N)
        mixer.in_proj.weight.normal_(0.0, C ** -0.5)
        mixer.x_proj.weight.normal_(0.0, 0.5 * Di ** -0.5)
        mixer.out_proj.weight.normal_(0.0, Di ** -0.5)
        mixer.dt_proj.weight.normal_(0.0, 0.3)
        dt = torch.empty(Di).uniform_(0.05, 1.0)
        mixer.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹
        mixer.A_log.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).expand(Di, N)
                          + torch.empty(Di, N).uniform_(-0.3, 0.3))
        mixer.D.normal_(1.0, 0.3)

    x = torch.randn(1, T, C)
    dy = torch.randn(1, T, C)

    # full forward without a cache (training-style call, pure-torch path), and its gradients
    xg = x.clone().requires_grad_(True)
    out = mixer(xg)
    (out * dy).sum().backward()

    # the cached prefill, for the states, then one token through the recurrent path
    with torch.no_grad():
        cache = DynamicCache(config=cfg)
        out_cached = mixer(x, cache=cache)
        assert torch.allclose(out_cached, out, atol=1e-6), "cached and uncached prefill disagree"
        ssm_state = cache.get_recurrent_state(0).clone()
        conv_state = cache.get_conv_state(0).clone()
        step_x = torch.randn(1, 1, C)
        step_out = mixer(step_x, cache=cache)
        step_ssm_state = cache.get_recurrent_state(0).clone()

    # the full forward over x + step_x must give the same last row: both paths agree in torch too
    with torch.no_grad():
        both = mixer(torch.cat([x, step_x], dim=1))
        assert torch.allclose(both[:, -1], step_out[:, 0], atol=1e-5), "transformers' step and scan disagree"

    tensors = {PREFIX + n: p.detach().contiguous() for n, p in mixer.named_parameters()}
    grads = {PREFIX + n: p.grad.detach().contiguous() for n, p in mixer.named_parameters()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    save_file(grads, os.path.join(out_dir, "grads.safetensors"))
    cfg.save_pretrained(out_dir)
    write_bin(os.path.join(out_dir, "x.bin"), x[0].numpy())
    write_bin(os.path.join(out_dir, "out.bin"), out[0].detach().numpy())
    write_bin(os.path.join(out_dir, "dy.bin"), dy[0].numpy())
    write_bin(os.path.join(out_dir, "dx.bin"), xg.grad[0].numpy())
    write_bin(os.path.join(out_dir, "ssm_state.bin"), ssm_state[0].numpy())
    write_bin(os.path.join(out_dir, "conv_state.bin"), conv_state[0].numpy())
    write_bin(os.path.join(out_dir, "step_x.bin"), step_x[0, 0].numpy())
    write_bin(os.path.join(out_dir, "step_out.bin"), step_out[0, 0].numpy())
    write_bin(os.path.join(out_dir, "step_ssm_state.bin"), step_ssm_state[0].numpy())
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump({
            "prefix": PREFIX, "T": T, "C": C, "Di": Di, "N": N, "W": W, "R": cfg.time_step_rank,
            "loss": "sum(out * dy)",
            "tolerance": {"out": 1e-5, "state": 1e-5, "grad_relative": 1e-5},
            "names": sorted(n for n, _ in mixer.named_parameters()),
            "transformers": transformers.__version__, "torch": torch.__version__,
        }, f, indent=1)
    print(f"mamba mixer golden: T={T} C={C} Di={Di} N={N} W={W} -> {out_dir}")


if __name__ == "__main__":
    main()
