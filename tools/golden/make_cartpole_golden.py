#!/usr/bin/env python3
"""Golden trajectories of gymnasium's CartPole-v1 for Tests/HMSTCoreTests/CartPoleTests.swift.

Each episode starts from a fixed state (set on env.unwrapped after reset) and plays a fixed action
sequence (recorded in the file, so the Swift test replays exactly these actions) until the episode
terminates or the TimeLimit wrapper truncates it at 500 steps. The state is float64 in gymnasium;
it is written with 17 significant digits.

Output (text): "episode x x_dot theta theta_dot" opens an episode, then one line per step:
"step action x x_dot theta theta_dot reward terminated truncated".

    pip install gymnasium   (only to regenerate; CI reads the committed file)
    python3 tools/golden/make_cartpole_golden.py Tests/Golden/cartpole/trajectories.txt
"""
import sys

import gymnasium as gym
import numpy as np


def episode(out, start, policy):
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.state = np.array(start, dtype=np.float64)
    out.write("episode " + " ".join("%.17g" % v for v in start) + "\n")
    t = 0
    while True:
        s = env.unwrapped.state
        a = policy(t, s)
        _, r, term, trunc, _ = env.step(a)
        s = env.unwrapped.state
        out.write("step %d %s %.17g %d %d\n" % (a, " ".join("%.17g" % v for v in s), r, term, trunc))
        t += 1
        if term or trunc:
            break
    env.close()
    return t


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "Tests/Golden/cartpole/trajectories.txt"
    rng = np.random.default_rng(12345)
    fixed = rng.integers(0, 2, size=1000)
    with open(path, "w") as out:
        # 1. constant push right: falls quickly.
        n1 = episode(out, [0.01, -0.02, 0.03, 0.04], lambda t, s: 1)
        # 2. a fixed pseudo-random sequence.
        n2 = episode(out, [-0.04, 0.03, -0.01, 0.02], lambda t, s: int(fixed[t]))
        # 3. a balancing controller's actions (recorded, so replayed as a fixed sequence): reaches
        #    the 500-step truncation, or the cart drifts out of bounds.
        n3 = episode(out, [0.02, 0.0, -0.03, 0.01],
                     lambda t, s: int(s[2] + 0.5 * s[3] + 0.01 * s[0] + 0.05 * s[1] > 0))
    print("episodes of", n1, n2, n3, "steps ->", path)


if __name__ == "__main__":
    main()
