"""Stream a completion from a checkpoint, then show the stats and the route trace.

    python3 examples/python/generate.py CHECKPOINT_DIR "Once upon a time" [max_tokens]
"""
import sys

import hmst

if len(sys.argv) < 3:
    sys.exit("usage: generate.py CHECKPOINT_DIR PROMPT [MAX_TOKENS]")
path, prompt = sys.argv[1], sys.argv[2]
max_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 40

with hmst.Model(path) as model, model.context(n_ctx=512, trace_routes=True) as ctx:
    print(prompt, end="", flush=True)
    stream = ctx.stream(prompt, max_tokens=max_tokens, temperature=0.8, seed=1234)
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    stats = stream.result.stats
    print(f"[{stats['prompt_tokens']} prompt tokens, {stats['generated_tokens']} generated at "
          f"{stats['tokens_per_second']:.1f} tokens/s, TTFT {stats['time_to_first_token_ms']:.1f} ms]", file=sys.stderr)
    experts, gates = ctx.route_trace()
    print(f"route trace: {experts.shape[0]} tokens x {experts.shape[1]} layers x top-{experts.shape[2]}; "
          f"first token, layer 0: experts {experts[0, 0].tolist()} gates {gates[0, 0].round(3).tolist()}", file=sys.stderr)
