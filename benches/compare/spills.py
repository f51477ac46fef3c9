#!/usr/bin/env python3
"""Stack traffic of every SIMD kernel, per instantiation, in a release build.

    python3 benches/compare/spills.py [REV]

The fused stream kernels keep their gates, state and `h` in registers; when a change
makes one need more registers than the tier has, the compiler spills them to the stack
and the kernel slows by 10-30 % (docs/PERFORMANCE.md, ninth session: a change to other
rows made the `avx512` tier's 8-lane GRU kernel of 40 units spill, found only by the
RTNeural harness minutes later). This counts, in the disassembly of the release
library, each kernel function's vector stores to the stack (`%rsp`-addressed `mov`s
from an xmm/ymm/zmm register) and its other instructions that read the stack with a
vector register (reloads, folded or not), by name with the generic arguments
(`-C symbol-mangling-version=v0`, which changes names, not code).

Without REV: a table per kernel family (tier and function) with totals, for the
working tree. With REV (any revision, built from `git archive` like
benches/compare/ab.sh): both side by side, every instantiation whose counts differ
listed, and exit status 1 where one stores markedly more than in REV (at least 4
stores and 10 % more: a change elsewhere moves counts by one or two). Some stack
traffic is by design (a padded layer's `h` buffer, gate vectors kept for a lockstep
update where the tier has 16 registers), so read the differences, not the totals.
x86-64 only (it reads AT&T syntax); needs cargo and objdump (binutils); writes under
target/spills/.
"""
import hashlib
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FN = re.compile(r"^[0-9a-f]+ <(rnncore::kernels::.*)>:$")
# `vmovups %ymm3,0x40(%rsp)`, `vmovaps %zmm1,0x80(%rsp){%k1}`, `movss %xmm0,(%rsp)`.
STORE = re.compile(r"^\s*[0-9a-f]+:\s+v?mov\w*\s+%[xyz]mm\d+,[^,]*\(%rsp")
VREG = re.compile(r"%[xyz]mm\d+")
GROW_MIN = 4
GROW_FRACTION = 1.10


def build(src, target):
    """Release library of the sources in `src`, built into `target`; its path."""
    env = dict(os.environ)
    flags = env.get("RUSTFLAGS", "")
    env["RUSTFLAGS"] = (flags + " -C symbol-mangling-version=v0").strip()
    env["CARGO_TARGET_DIR"] = target
    lib = os.path.join(target, "release", "librnncore.so")
    subprocess.run(
        ["cargo", "build", "--release", "--lib", "-p", "rnncore"],
        cwd=src,
        env=env,
        check=True,
    )
    return lib


def counts(lib):
    """{kernel function: (stack stores, other stack reads, instructions)}."""
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", lib],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    res = {}
    name = None
    for line in out.splitlines():
        m = FN.match(line)
        if m:
            name = m.group(1)
            # Two instantiations can share a name only if their code is the same
            # function twice; keep the first.
            if name in res:
                name = None
            else:
                res[name] = [0, 0, 0]
            continue
        if name is None:
            continue
        if not line.strip():
            name = None
            continue
        if ":\t" not in line:
            continue
        c = res[name]
        c[2] += 1
        if STORE.match(line):
            c[0] += 1
        elif "(%rsp" in line and VREG.search(line):
            c[1] += 1
    return {k: tuple(v) for k, v in res.items()}


def family(name):
    return name.split("::<", 1)[0].replace("rnncore::kernels::", "")


def totals(c):
    t = defaultdict(lambda: [0, 0, 0, 0])
    for name, (s, r, n) in c.items():
        f = t[family(name)]
        f[0] += 1
        f[1] += s
        f[2] += r
        f[3] += n
    return t


def rev_lib(rev, work):
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", rev + "^{commit}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if commit.returncode != 0:
        sys.exit(f"spills.py: {rev} is not a revision of this repository")
    short = commit.stdout.strip()[:7]
    src = os.path.join(work, "src-" + short)
    subprocess.run(["rm", "-rf", src], check=True)
    os.makedirs(src)
    subprocess.run(
        f"git archive {short} | tar -x -C '{src}'", shell=True, cwd=ROOT, check=True
    )
    lib = build(src, os.path.join(work, "target-" + short))
    kept = os.path.join(work, f"librnncore-{short}.so")
    subprocess.run(["cp", lib, kept], check=True)
    subprocess.run(["rm", "-rf", src], check=True)
    return short, kept


def main():
    args = sys.argv[1:]
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(__doc__.strip())
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    work = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "spills")
    if not os.path.isabs(work):
        work = os.path.join(ROOT, work)
    os.makedirs(work, exist_ok=True)
    # A folder per checkout: a cdylib's file has no hash in its name, so two checkouts
    # building into one folder would leave cargo's freshness and the file disagreeing.
    tag = hashlib.sha256(ROOT.encode()).hexdigest()[:8]
    tree = counts(build(ROOT, os.path.join(work, "target-tree-" + tag)))
    if not tree:
        sys.exit("spills.py: no kernel functions found (objdump's demangler too old for v0?)")
    if not args:
        print("| kernel family | instances | stack stores | stack reads | instructions |")
        print("| --- | --: | --: | --: | --: |")
        for f, (k, s, r, n) in sorted(totals(tree).items()):
            print(f"| {f} | {k} | {s} | {r} | {n} |")
        return 0
    short, lib = rev_lib(args[0], work)
    base = counts(lib)
    tb, tt = totals(base), totals(tree)
    print(f"Stack stores / reads per kernel family, {short} (A) and the working tree (B):")
    print()
    print("| kernel family | A stores | B stores | A reads | B reads | A instructions | B instructions |")
    print("| --- | --: | --: | --: | --: | --: | --: |")
    for f in sorted(set(tb) | set(tt)):
        a, b = tb.get(f, [0] * 4), tt.get(f, [0] * 4)
        print(f"| {f} | {a[1]} | {b[1]} | {a[2]} | {b[2]} | {a[3]} | {b[3]} |")
    # Flagged: at least GROW_MIN more stores, and GROW_FRACTION more. A change
    # elsewhere moves a kernel's counts by one or two (a different register choice in
    # its setup); the spill that 1ee8de7 caused was 61 -> 87 stores.
    flagged, shifted, same_stack = [], [], 0
    for name in sorted(set(base) | set(tree)):
        a, b = base.get(name), tree.get(name)
        if a == b:
            continue
        if a is not None and b is not None and a[:2] == b[:2]:
            same_stack += 1
            continue
        grew = a is not None and b is not None and b[0] - a[0] >= GROW_MIN and b[0] > a[0] * GROW_FRACTION
        (flagged if grew else shifted).append((name, a, b))
    print()

    def show(rows):
        for name, a, b in rows:
            fa = "-" if a is None else f"{a[0]} / {a[1]} / {a[2]}"
            fb = "-" if b is None else f"{b[0]} / {b[1]} / {b[2]}"
            print(f"- `{name}`: {fa} -> {fb}")

    if flagged:
        print("**More stack stores** (stores / reads / instructions, A -> B):")
        print()
        show(flagged)
        print()
    if shifted:
        print("Other stack counts that moved (stores / reads / instructions, A -> B; - where absent):")
        print()
        show(shifted)
        print()
    print(f"{same_stack} more instantiations differ in instructions only; the rest are the same.")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
