#!/usr/bin/env python3
"""Folder include graph of src/: which folders' headers each folder includes, and every cycle.

Reads every src/*/*.c and src/*/*.h, maps each `#include "X/..."` to an edge folder -> X (an
include of the folder's own headers is no edge), prints the graph one folder a line and every
elementary cycle. With --check, exits 1 (printing the cycles and the includes that make them) if
there is any cycle, so `make check` keeps the layers acyclic.

Usage: python3 scripts/include_graph.py [--check] [--src DIR] [--why]
"""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]+"', re.M)


def read_graph(src):
    """{folder: {target: [(file, header), ...]}} for every folder under src."""
    graph = {}
    for folder in sorted(os.listdir(src)):
        d = os.path.join(src, folder)
        if not os.path.isdir(d):
            continue
        edges = graph.setdefault(folder, {})
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(d, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                target = m.group(1)
                if target != folder:
                    line = text[m.start():m.end()].strip()
                    edges.setdefault(target, []).append((f"{folder}/{name}", line))
    return graph


def cycles(graph):
    """Every elementary cycle, each once, starting at its smallest folder name (Johnson-style DFS;
    the graph has a dozen nodes, so a plain search is enough)."""
    found = []
    nodes = sorted(graph)
    for start in nodes:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, {})):
                if nxt == start:
                    found.append(path + [start])
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    found.sort(key=lambda c: (len(c), c))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if there is a cycle")
    ap.add_argument("--why", action="store_true", help="list the includes behind each edge")
    ap.add_argument("--src", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    a = ap.parse_args()
    if not os.path.isdir(a.src):
        print(f"include_graph: {a.src}: not a directory", file=sys.stderr)
        return 2
    graph = read_graph(a.src)
    cyc = cycles(graph)
    if not a.check:
        print("folder -> folders it includes")
        for folder in sorted(graph):
            print(f"  {folder:8} -> {', '.join(sorted(graph[folder])) or '(none)'}")
            if a.why:
                for t in sorted(graph[folder]):
                    for fname, line in graph[folder][t]:
                        print(f"      {fname}: {line}")
        print(f"cycles: {len(cyc)}")
    for c in cyc:
        print("  cycle: " + " -> ".join(c))
        if a.check:
            for x, y in zip(c, c[1:]):
                for fname, line in graph[x][y]:
                    print(f"      {fname}: {line}")
    if a.check:
        if cyc:
            print(f"include_graph: {len(cyc)} include cycle(s) between src/ folders", file=sys.stderr)
            return 1
        print("include_graph: no include cycles between src/ folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
