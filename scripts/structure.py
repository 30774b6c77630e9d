#!/usr/bin/env python3
"""Structure limits of src/: no file over 600 lines, no function over 100 lines, no cycle
between modules. Offenders that predate a limit are listed in scripts/structure-allow.txt
(a ratchet): a new offender fails, and so does an allowed one that no longer offends (take it
off the list), so the list only shrinks.

Usage: scripts/structure.py          check (exit 1 on a violation)
       scripts/structure.py --list   print every offender in the allow-list format
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
ALLOW = os.path.join(ROOT, "scripts", "structure-allow.txt")
MAX_FILE_LINES = 600
MAX_FN_LINES = 100

FN_RE = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
PATH_RE = re.compile(r"\b(crate|super)((?:::\w+)+)")


def rust_files():
    for dirpath, _, names in os.walk(SRC):
        for n in sorted(names):
            if n.endswith(".rs"):
                yield os.path.join(dirpath, n)


def module_of(path):
    """crate::a::b for src/a/b.rs or src/a/b/mod.rs; crate for lib.rs/main.rs."""
    rel = os.path.relpath(path, SRC)[: -len(".rs")].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ("crate",)
    return ("crate", *rel)


def strip_tests(lines):
    """The lines before a trailing `#[cfg(test)] mod tests` block (tests may be long)."""
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and i + 1 < len(lines) and lines[i + 1].startswith("mod "):
            return lines[:i]
    return lines


def long_functions(lines):
    out = []
    for i, line in enumerate(lines):
        m = FN_RE.match(line)
        if not m:
            continue
        indent = m.group(1)
        # The signature ends with `{` (a body) or `;` (a declaration); a one-line body ends
        # with `}`. The body ends at the first closing brace at the fn's indentation (rustfmt).
        j = i
        while j < len(lines) and not lines[j].rstrip().endswith(("{", ";", "}")):
            j += 1
        if j == len(lines) or not lines[j].rstrip().endswith("{"):
            continue
        end = next((k for k in range(j + 1, len(lines)) if lines[k].rstrip() == indent + "}"), None)
        if end is not None and end - i + 1 > MAX_FN_LINES:
            out.append((m.group(7), end - i + 1))
    return out


def references(module, text):
    """Modules named by `crate::…` and `super::…` paths in the text."""
    refs = set()
    for kind, rest in PATH_RE.findall(text):
        parts = rest.split("::")[1:]
        if kind == "crate":
            base = ("crate",)
        else:
            base = module[:-1] if len(module) > 1 else module
        refs.add(base + tuple(parts))
    return refs


def resolve(path, modules):
    """The longest prefix of `path` that is a module."""
    for n in range(len(path), 0, -1):
        if path[:n] in modules:
            return path[:n]
    return None


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def offenders():
    found = []
    modules = {}
    texts = {}
    for path in rust_files():
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        count = len(lines) - (1 if lines and lines[-1] == "" else 0)
        if count > MAX_FILE_LINES:
            found.append(f"file {rel}")
        code = strip_tests(lines)
        for name, n in long_functions(code):
            found.append(f"fn {rel}::{name}")
        module = module_of(path)
        modules[module] = rel
        # Paths in comments (doc links) are no dependency.
        texts[module] = "\n".join(l for l in code if not l.lstrip().startswith("//"))
    graph = defaultdict(set)
    for module, text in texts.items():
        graph[module]
        for ref in references(module, text):
            target = resolve(ref, modules)
            # A module naming its own ancestors or descendants (re-exports, `super::Error`)
            # is structure, not a dependency between peers.
            if target is None or target == module:
                continue
            if target[: len(module)] == module or module[: len(target)] == target:
                continue
            graph[module].add(target)
    for comp in cycles(graph):
        found.append("cycle " + " <-> ".join("::".join(m) for m in comp))
    return sorted(found)


def main():
    found = offenders()
    if "--list" in sys.argv:
        print("\n".join(found))
        return 0
    allowed = set()
    if os.path.exists(ALLOW):
        with open(ALLOW, encoding="utf-8") as f:
            allowed = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    new = [o for o in found if o not in allowed]
    gone = sorted(allowed - set(found))
    for o in new:
        print(f"structure: {o}: over the limit (files {MAX_FILE_LINES} lines, functions "
              f"{MAX_FN_LINES} lines, no module cycles); split it", file=sys.stderr)
    for o in gone:
        print(f"structure: {o} is within the limits now: remove it from "
              f"scripts/structure-allow.txt", file=sys.stderr)
    if new or gone:
        return 1
    print(f"structure: ok ({len(found)} allowed offenders left in scripts/structure-allow.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
