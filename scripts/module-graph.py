#!/usr/bin/env python3
"""Prints the dependency graph of the crate's modules and any import circle among them; exits 1
when there is one.

Usage: python3 scripts/module-graph.py [--files] [--quiet] [--root DIR]
  --quiet: only the circles, or that there is none; --root: the source folder (default: src/)

Without --files: one node per top-level module (room), from `crate::` paths in src/.
With --files: one node per source file, from `crate::`, `super::` and `self::` paths and a
room's paths to its own files. A room's front (its mod.rs) declares and re-exports its files,
and its files may use what it holds, so an edge from a file to the front of a room that contains
it is not counted; every other circle among files is.
Test modules (`#[cfg(test)] mod tests { ... }` at the end of a file) and comments are ignored.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
if "--root" in sys.argv:
    ROOT = sys.argv[sys.argv.index("--root") + 1]
per_file = "--files" in sys.argv
quiet = "--quiet" in sys.argv


def module_path(path):
    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def strip_comments_and_tests(text):
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


files = sorted(os.path.join(d, f) for d, _, fs in os.walk(ROOT) for f in fs if f.endswith(".rs"))
file_nodes = {"::".join(module_path(f)): f for f in files}


def node_of(parts):
    """The node a module path falls in: the longest prefix naming a file (or its room)."""
    if not per_file:
        parts = parts[:1]
    for k in range(len(parts), 0, -1):
        cand = "::".join(parts[:k])
        if cand in file_nodes:
            return cand
    return None


def base_of(keyword, me):
    return [] if keyword == "crate" else list(me) if keyword == "self" else me[:-1]


graph = {}
for path in files:
    me = module_path(path)
    node = node_of(me)
    if node in (None, "lib", "main") or me[0] == "bin":
        continue
    text = strip_comments_and_tests(open(path).read())
    deps = graph.setdefault(node, set())
    targets = []
    # crate::a::b, super::super::a, self::a
    for m in re.finditer(r"\b(crate|super|self)((?:::(?:super|[a-z_0-9]+))+)", text):
        parts = m.group(2).split("::")[1:]
        base = base_of(m.group(1), me)
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
        targets.append(base + parts)
    # crate::{a, b}, super::x::{a, b}
    for m in re.finditer(r"\b(crate|super|self)((?:::(?:super|[a-z_0-9]+))*)::\{([^}]*)\}", text):
        pre = [p for p in m.group(2).split("::") if p]
        base = base_of(m.group(1), me)
        while pre and pre[0] == "super":
            base, pre = base[:-1], pre[1:]
        targets += [base + pre + [name] for name in re.findall(r"\b([a-z_0-9]+)\b", m.group(3))]
    # a room's front naming its own files: `use child::X`, `child::f()`
    if path.endswith("mod.rs"):
        targets += [me + [m.group(1)] for m in re.finditer(r"(?<![:\w])([a-z_0-9]+)::", text)]
    for parts in targets:
        if parts[:1] in (["Error"], ["Result"], ["error_chain"]):
            continue
        target = node_of(parts)
        if target is None or target == node:
            continue
        # a file using the front of a room it belongs to
        if per_file and me[: len(target.split("::"))] == target.split("::"):
            continue
        deps.add(target)

if not quiet:
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
print("no import circle" + (" between files" if per_file else " between rooms"))
