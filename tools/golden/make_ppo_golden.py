#!/usr/bin/env python3
"""Golden for two PPO minibatch steps in PyTorch, for Tests/HMSTCoreTests/PPOTests.swift.

A CleanRL-shaped agent (actor and critic MLPs 4 -> 64 -> 64 -> {2, 1}, tanh), random parameters,
two minibatches of 8 rows (observations, actions, old log-probs, advantages, returns, old values,
with old values/log-probs offset so value and ratio clipping both occur). Each step: the PPO loss
(normalised advantages, clipped surrogate, clipped value loss, entropy bonus; clip 0.2, ent 0.01,
vf 0.5), backward, clip_grad_norm_(0.5), torch.optim.Adam(lr 2.5e-4, eps 1e-5).

Files (HMSTGOLD float32: b"HMSTGOLD" u32 1 u32 ndim u32 dims[ndim] f32 data) in the output dir:
params0, params1, params2 (flat, actor then critic, each layer weight [out, in] then bias),
batch{0,1}_{obs,actions,oldlogp,adv,returns,oldvalues}, stats (loss, approx_kl, clipfrac per step).

    python3 tools/golden/make_ppo_golden.py Tests/Golden/ppo
"""
import os
import struct
import sys

import numpy as np
import torch


def write(path, a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    with open(path, "wb") as f:
        f.write(b"HMSTGOLD" + struct.pack("<II", 1, a.ndim) + struct.pack("<%dI" % a.ndim, *a.shape))
        f.write(a.tobytes())


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def flat(actor, critic):
    return torch.cat([p.detach().reshape(-1) for net in (actor, critic) for p in net.parameters()]).numpy()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Golden/ppo"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    actor, critic = mlp([4, 64, 64, 2]), mlp([4, 64, 64, 1])
    with torch.no_grad():   # a policy head that is not almost uniform
        actor[-1].weight.mul_(3.0)
    params = list(actor.parameters()) + list(critic.parameters())
    opt = torch.optim.Adam(params, lr=2.5e-4, eps=1e-5)
    write(os.path.join(out, "params0"), flat(actor, critic))
    stats = []
    M, clip = 8, 0.2
    for step in range(2):
        obs = torch.tensor(rng.normal(size=(M, 4)), dtype=torch.float32)
        act = torch.tensor(rng.integers(0, 2, size=M))
        with torch.no_grad():
            dist = torch.distributions.Categorical(logits=actor(obs))
            lp_now, v_now = dist.log_prob(act), critic(obs).squeeze(1)
        oldlogp = lp_now - torch.tensor([-0.5, -0.1, 0.0, 0.1, 0.5, -0.4, 0.3, 0.05], dtype=torch.float32)
        oldv = v_now - torch.tensor([-0.5, -0.1, 0.1, 0.5, 0.3, -0.3, 0.05, -0.05], dtype=torch.float32)
        adv = torch.tensor(rng.normal(size=M) * 2 + 0.3, dtype=torch.float32)
        ret = torch.tensor(rng.normal(size=M), dtype=torch.float32)
        for name, a in (("obs", obs), ("actions", act.float()), ("oldlogp", oldlogp), ("adv", adv),
                        ("returns", ret), ("oldvalues", oldv)):
            write(os.path.join(out, "batch%d_%s" % (step, name)), a.numpy())

        dist = torch.distributions.Categorical(logits=actor(obs))
        newlogp, entropy, newv = dist.log_prob(act), dist.entropy(), critic(obs).squeeze(1)
        logratio = newlogp - oldlogp
        ratio = logratio.exp()
        with torch.no_grad():
            kl = ((ratio - 1) - logratio).mean().item()
            clipfrac = ((ratio - 1).abs() > clip).float().mean().item()
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = torch.max(-a * ratio, -a * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
        v_clipped = oldv + torch.clamp(newv - oldv, -clip, clip)
        vloss = 0.5 * torch.max((newv - ret) ** 2, (v_clipped - ret) ** 2).mean()
        loss = pg - 0.01 * entropy.mean() + 0.5 * vloss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
        stats += [loss.item(), kl, clipfrac]
        write(os.path.join(out, "params%d" % (step + 1)), flat(actor, critic))
    write(os.path.join(out, "stats"), np.array(stats))
    print("ppo golden ->", out, "stats", stats)


if __name__ == "__main__":
    main()
