#!/usr/bin/env python3
"""Compares what libhmst exports with what hmst.h declares.

Fails when the library exports anything that is not an hmst_ function, when a declared function
is missing from the library or an exported one is missing from the header, and (with --tests)
when a C host test never calls a declared function.
"""
import argparse
import re
import subprocess
import sys


def header_functions(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # drop comments
    return set(re.findall(r"HMST_API\s+[^;{}()]*?\b(hmst_\w+)\s*\(", text))


def exported_symbols(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2].split("@")[0]
        if kind == "A":  # a symbol-version node such as HMST_0, not code or data
            continue
        names.add(name)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--header", required=True)
    ap.add_argument("--library", required=True)
    ap.add_argument("--tests", nargs="*", default=[])
    args = ap.parse_args()

    declared = header_functions(args.header)
    exported = exported_symbols(args.library)
    problems = []
    foreign = sorted(n for n in exported if not n.startswith("hmst_"))
    if foreign:
        problems.append(f"{len(foreign)} exported symbols are not hmst_ names, e.g. {foreign[:5]}")
    missing = sorted(declared - exported)
    if missing:
        problems.append(f"declared in {args.header} but not exported: {missing}")
    undeclared = sorted(n for n in exported - declared if n.startswith("hmst_"))
    if undeclared:
        problems.append(f"exported but not declared in {args.header}: {undeclared}")
    if args.tests:
        tested = "".join(open(t, encoding="utf-8").read() for t in args.tests)
        untested = sorted(n for n in declared if not re.search(r"\b" + n + r"\s*\(", tested))
        if untested:
            problems.append(f"never called by {args.tests}: {untested}")
    for p in problems:
        print("export-check: " + p, file=sys.stderr)
    if problems:
        return 1
    print(f"export-check: {len(exported)} exported symbols, all hmst_, matching the {len(declared)} "
          f"functions of {args.header}" + (", each called by the C host tests" if args.tests else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
