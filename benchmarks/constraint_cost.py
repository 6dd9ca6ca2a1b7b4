#!/usr/bin/env python3
"""Constrained generation's cost per token (JSON mode, a JSON Schema, a GBNF grammar) at real
vocabulary sizes: trains byte-level BPE tokenizers of 32k and 128k tokens on Debian's fortune
files with Hugging Face tokenizers, then runs `hmst-bench constraint` on each.
    python3 benchmarks/constraint_cost.py [--bench .build/release/hmst-bench] [--vocab 32000,128000]
Needs `pip install tokenizers` and `apt-get install fortunes`. One JSON line per constraint and vocabulary.
"""
import argparse
import glob
import json
import os
import subprocess
import tempfile

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def corpus_file(d):
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*") if os.path.isfile(f) and "." not in os.path.basename(f))
    if not files:
        raise SystemExit("no fortune files: apt-get install fortunes")
    path = os.path.join(d, "corpus.txt")
    with open(path, "wb") as out:
        for _ in range(4):   # the corpus repeated: more pairs reach min_frequency, so larger vocabularies fill
            for f in files:
                out.write(open(f, "rb").read())
    return path


def train(corpus, vocab, out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train([corpus], trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=["<|endoftext|>"],
                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.save(out)
    return tok.get_vocab_size()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=".build/release/hmst-bench")
    ap.add_argument("--vocab", default="32000,128000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        corpus = corpus_file(d)
        for v in (int(x) for x in args.vocab.split(",")):
            path = os.path.join(d, f"tokenizer-{v}.json")
            got = train(corpus, v, path)
            out = subprocess.run([args.bench, "constraint", "--tokenizer", path], check=True, capture_output=True, text=True).stdout
            for line in out.splitlines():
                r = json.loads(line)
                r["vocab_asked"] = v
                r["vocab_trained"] = got
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
