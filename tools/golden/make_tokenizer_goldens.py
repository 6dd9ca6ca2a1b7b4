#!/usr/bin/env python3
"""Golden files for hmst's tokenizer against Hugging Face `tokenizers` (pip install tokenizers).

Both directions, on a corpus every Debian system ships (/usr/share/common-licenses):
  hf_tokenizer.json   trained by HF tokenizers (ByteLevel BPE, vocab 1000, min_frequency 2)
  hf_expected.json    HF's ids for the test strings with that tokenizer
  hmst_tokenizer.json trained by hmst on the same corpus and options (`hmst tokenizer train`)
  hmst_expected.json  HF's ids for the test strings when HF loads hmst's tokenizer.json
Also records whether the two trainers learned identical merges. CI only reads these files.

    python3 tools/golden/make_tokenizer_goldens.py [--hmst build/bin/hmst] [--out Tests/Golden/tokenizer]
"""
import argparse
import json
import os
import subprocess

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = ["/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"]
SPECIAL = ["<|endoftext|>", "<|pad|>"]

TEST_STRINGS = [
    "Hello world",
    "The GNU General Public License is a free, copyleft license for software.",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "It's, we're, they've, I'm, you'll, he'd, 'tis, DON'T",
    "numbers 1234567890 3.14159 1,000,000 v2.0",
    "punctuation!!! ??? ... --- (parentheses) [brackets] {braces} <angles>",
    "naïve café résumé Ünïcödé",
    "Ελληνικά русский язык עברית العربية",
    "日本語のテキストと中文文本",
    "emoji 😀🎉👍🏽 and flags 🇩🇪",
    "mixed<|endoftext|>special tokens<|pad|><|pad|> inside",
    "<|endoftext|>",
    "",
    " ",
    "a",
    "\u00a0non-breaking\u2003em space\u3000ideographic",
    "combining e\u0301 and zero\u200bwidth",
    "x" * 300,
    "the the the the the the the the",
]


def hf_train(files, vocab_size, min_frequency):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train(files, trainer)
    return tok


def expected(tok):
    return [{"text": s, "ids": tok.encode(s).ids} for s in TEST_STRINGS]


def merges_of(path):
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in json.load(open(path))["model"]["merges"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hmst", default="build/bin/hmst")
    ap.add_argument("--out", default="Tests/Golden/tokenizer")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    hf = hf_train(CORPUS, 1000, 2)
    hf_path = os.path.join(args.out, "hf_tokenizer.json")
    hf.save(hf_path)
    json.dump(expected(hf), open(os.path.join(args.out, "hf_expected.json"), "w"), ensure_ascii=False, indent=0)

    hmst_path = os.path.join(args.out, "hmst_tokenizer.json")
    subprocess.run([args.hmst, "tokenizer", "train", "--vocab-size", "1000", "--min-frequency", "2", "--no-progress",
                    "--output", hmst_path] + CORPUS, check=True)
    ours = Tokenizer.from_file(hmst_path)
    json.dump(expected(ours), open(os.path.join(args.out, "hmst_expected.json"), "w"), ensure_ascii=False, indent=0)

    a, b = merges_of(hf_path), merges_of(hmst_path)
    same = sum(1 for x, y in zip(a, b) if x == y)
    first_diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    summary = {"hf_merges": len(a), "hmst_merges": len(b), "identical_prefix": first_diff if first_diff is not None else min(len(a), len(b)),
               "same_position": same, "vocab_equal": json.load(open(hf_path))["model"]["vocab"] == json.load(open(hmst_path))["model"]["vocab"]}
    json.dump(summary, open(os.path.join(args.out, "training_comparison.json"), "w"), indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
