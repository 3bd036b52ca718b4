#!/usr/bin/env python3
"""Prints the dependency graph of the crate's top-level modules (from `crate::` paths in src/)
and any import circle among them; exits 1 when there is one.

Usage: python3 scripts/module-graph.py [--files]   (--files: one node per source file instead)
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
per_file = "--files" in sys.argv


def node_of(path):
    rel = os.path.relpath(path, ROOT)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if not per_file:
        parts = parts[:1]
    return "::".join(parts)


def strip_comments_and_tests(text):
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


graph = {}
files = [os.path.join(d, f) for d, _, fs in os.walk(ROOT) for f in fs if f.endswith(".rs")]
for path in files:
    node = node_of(path)
    if node in ("lib", "main"):
        continue
    text = strip_comments_and_tests(open(path).read())
    deps = graph.setdefault(node, set())
    for m in re.finditer(r"crate::((?:[a-z_0-9]+::)*[a-z_0-9]+)", text):
        parts = m.group(1).split("::")
        target = parts[0] if not per_file else None
        if per_file:
            # the longest prefix that names a file node
            for k in range(len(parts), 0, -1):
                cand = "::".join(parts[:k])
                if any(node_of(f) == cand for f in files):
                    target = cand
                    break
        if target and target != node and target not in ("Error", "Result", "error_chain"):
            deps.add(target)
# `crate::{a, b}` groups
    for m in re.finditer(r"crate::\{([^}]*)\}", text):
        for name in re.findall(r"([a-z_0-9]+)", m.group(1)):
            if name != node and any(node_of(f).split("::")[0] == name for f in files):
                deps.add(name)

for node in sorted(graph):
    print(f"{node}: {' '.join(sorted(graph[node]))}")

# Tarjan's strongly connected components
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
        if w not in graph:
            continue
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
            sccs.append(sorted(comp))


for v in sorted(graph):
    if v not in index:
        visit(v)
if sccs:
    print("import circles:")
    for c in sccs:
        print("  " + " <-> ".join(c))
    sys.exit(1)
print("no import circle")
