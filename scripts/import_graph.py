#!/usr/bin/env python3
"""The import graph between the files of Rust crates; fails on any circle.

    scripts/import_graph.py [--list] ROOT [ROOT ...]

Each ROOT is a crate's source directory (src, core/src, client/src); its
crate name comes from the Cargo.toml next to it (hyphens as underscores),
its crate roots are lib.rs and main.rs, and its files are the modules they
declare (`mod x;`), followed down. An arrow goes from a file to the file of
every module a path in it names: `use crate::a::b`, `super::x`, `self::y`,
`$crate::z`, a child module's name (`commands::acquire::SPEC` in lib.rs) and
another given crate's name (`hblock_core::lease::Lease`), each resolved to
the deepest module that has a file (an item of lib.rs or a re-export there
resolves to lib.rs). Only production code counts: comments and literals are
dropped, and so is every item under `#[cfg(test)]` (test modules, test-only
functions). Declaring a module (`mod x;`) is not an arrow.

Prints the number of files and arrows and every circle (each strongly
connected group of files, with one shortest loop through it); exits 1 when
there is one. --list also prints every arrow; --layers prints each file's
height (0: imports no file given here; else 1 + the highest it imports),
when there is no circle. Python 3 standard library only.
"""

import os
import re
import sys
from collections import deque

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text):
    """Comments, string and char literals replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        else:
            raw = re.match(r'(?:b|c|br|cr)?r(#*)"', text[i:i + 40])
            prev = text[i - 1] if i else " "
            if raw and not (prev.isalnum() or prev == "_"):
                end = '"' + raw.group(1)
                j = text.find(end, i + raw.end())
                j = n if j < 0 else j + len(end)
                out.append(blank(text[i:j]))
                i = j
                continue
            lit = re.match(r'(?:b|c)?"', text[i:i + 2])
            if lit and not (prev.isalnum() or prev == "_"):
                j = i + lit.end()
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                out.append(blank(text[i:j + 1]))
                i = j + 1
                continue
            if c == "'" or (c == "b" and text.startswith("b'", i) and not (prev.isalnum() or prev == "_")):
                start = i + (1 if c == "b" else 0)
                ch = re.match(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'", text[start:start + 12])
                if ch:
                    j = start + ch.end()
                    out.append(blank(text[i:j]))
                    i = j
                    continue
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(text, at):
    """Index after the `}` matching the `{` at `at`."""
    depth = 0
    for j in range(at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def drop_test_items(code):
    """Every item under `#[cfg(test)]` blanked out, and the names of the
    modules declared for tests only (not followed)."""
    test_mods = set()
    while True:
        m = re.search(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", code)
        if not m:
            return code, test_mods
        j = m.end()
        while j < len(code) and code[j] not in "{;":
            j += 1
        head = code[m.end():j]
        mod = re.search(r"\bmod\s+(" + IDENT + r")\s*$", head)
        if j < len(code) and code[j] == "{":
            j = matching_brace(code, j)
        else:
            j += 1
            if mod:
                test_mods.add(mod.group(1))
        code = code[:m.start()] + "".join("\n" if ch == "\n" else " " for ch in code[m.start():j]) + code[j:]


def split_top(s, sep=","):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def expand_use(tree, prefix=()):
    """`a::{b, c::{d, self}}` -> [(a, b), (a, c, d), (a, c)]."""
    tree = re.sub(r"\s+as\s+" + IDENT + r"\s*$", "", tree.strip())
    tree = re.sub(r"\s+", "", tree)
    if tree.startswith("::"):
        tree = tree[2:]
    brace = tree.find("{")
    if brace < 0:
        segs = [s for s in tree.split("::") if s]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        if segs and segs[-1] == "*":
            segs = segs[:-1]
        return [tuple(prefix) + tuple(segs)]
    head = [s for s in tree[:brace].split("::") if s]
    inner = tree[brace + 1:tree.rfind("}")]
    paths = []
    for part in split_top(inner):
        paths.extend(expand_use(part, tuple(prefix) + tuple(head)))
    return paths


class Crate:
    def __init__(self, root):
        self.root = os.path.normpath(root)
        self.name = crate_name(self.root)
        # module path (tuple) -> file, per crate root file (lib.rs, main.rs)
        self.trees = {}


def crate_name(root):
    toml = os.path.join(os.path.dirname(root), "Cargo.toml")
    lib_name = pkg_name = None
    section = None
    try:
        with open(toml, encoding="utf-8") as f:
            for line in f:
                s = line.strip()
                if s.startswith("["):
                    section = s
                    continue
                m = re.match(r'name\s*=\s*"([^"]+)"', s)
                if m and section == "[package]":
                    pkg_name = m.group(1)
                elif m and section == "[lib]":
                    lib_name = m.group(1)
    except OSError:
        pass
    name = lib_name or pkg_name or os.path.basename(os.path.dirname(root))
    return name.replace("-", "_")


def read_code(path):
    with open(path, encoding="utf-8") as f:
        code = strip_code(f.read())
    return drop_test_items(code)


def module_file(directory, name, is_mod_dir):
    """The file of child module `name` of a module whose own children live in `directory`."""
    for candidate in (os.path.join(directory, name + ".rs"), os.path.join(directory, name, "mod.rs")):
        if os.path.isfile(candidate):
            return candidate
    return None


def build_tree(crate, root_file):
    """Module path -> (file, code) for every module reached from root_file."""
    modules = {}
    todo = [((), root_file)]
    while todo:
        path, file = todo.pop()
        code, test_mods = read_code(file)
        modules[path] = (file, code)
        base = os.path.basename(file)
        if path == () or base == "mod.rs":
            children_dir = os.path.dirname(file)
        else:
            children_dir = os.path.join(os.path.dirname(file), base[:-3])
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*;", code):
            name = m.group(1)
            if name in test_mods:
                continue
            child = module_file(children_dir, name, False)
            if child:
                todo.append((path + (name,), child))
    return modules


def resolve(crates, crate, tree, module, segs):
    """The file a path names, or None (std, other crates, locals)."""
    if not segs:
        return None
    first, rest = segs[0], list(segs[1:])
    if first in ("crate", "$crate"):
        target_tree, base = tree, ()
    elif first == "super":
        base = module[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
        target_tree = tree
    elif first == "self":
        target_tree, base = tree, module
    elif module + (first,) in tree:
        target_tree, base, rest = tree, module + (first,), rest
    elif first in crates and crates[first] is not crate:
        other = crates[first]
        target_tree = other.trees.get("lib.rs")
        if target_tree is None:
            return None
        base = ()
    else:
        return None
    while rest and base + (rest[0],) in target_tree:
        base, rest = base + (rest[0],), rest[1:]
    return target_tree[base][0]


PATH = re.compile(r"(?<![A-Za-z0-9_:])(\$crate|" + IDENT + r")((?:\s*::\s*(?:" + IDENT + r"))+)")


def arrows_of(crates, crate, tree, module, code):
    found = set()
    # use declarations (their trees), then every other path in the code
    uses = list(re.finditer(r"\buse\s+([^;]+);", code))
    for m in uses:
        for segs in expand_use(m.group(1)):
            target = resolve(crates, crate, tree, module, list(segs))
            if target:
                found.add(target)
    rest = code
    for m in reversed(uses):
        rest = rest[:m.start()] + " " * (m.end() - m.start()) + rest[m.end():]
    for m in PATH.finditer(rest):
        segs = [m.group(1)] + [s for s in re.split(r"\s*::\s*", m.group(2)) if s]
        target = resolve(crates, crate, tree, module, segs)
        if target:
            found.add(target)
    return found


def strongly_connected(nodes, edges):
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == node:
                        break
                groups.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return groups


def shortest_loop(start, edges, group):
    members = set(group)
    prev = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(edges.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def main(argv):
    show = "--list" in argv
    layers = "--layers" in argv
    roots = [a for a in argv if a not in ("--list", "--layers")]
    if not roots:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    crates = {}
    for root in roots:
        if not os.path.isdir(root):
            print(f"import_graph: {root}: not a directory", file=sys.stderr)
            return 2
        crate = Crate(root)
        crates[crate.name] = crate
    for crate in crates.values():
        for root_file in ("lib.rs", "main.rs"):
            path = os.path.join(crate.root, root_file)
            if os.path.isfile(path):
                crate.trees[root_file] = build_tree(crate, path)
    nodes, edges = set(), {}
    for crate in crates.values():
        for tree in crate.trees.values():
            for module, (file, code) in tree.items():
                nodes.add(file)
                targets = arrows_of(crates, crate, tree, module, code) - {file}
                edges.setdefault(file, set()).update(targets)
                nodes.update(targets)
    count = sum(len(t) for t in edges.values())
    groups = [g for g in strongly_connected(nodes, edges) if len(g) > 1]
    print(f"import graph of {', '.join(roots)}: {len(nodes)} files, {count} arrows, "
          f"{len(groups)} circle(s)")
    if show:
        for v in sorted(edges):
            for w in sorted(edges[v]):
                print(f"  {v} -> {w}")
    for group in groups:
        print(f"circle of {len(group)} files: {' '.join(group)}")
        print(f"  e.g. {' -> '.join(shortest_loop(group[0], edges, group))}")
    if layers and not groups:
        height = {}

        def of(v):
            if v not in height:
                height[v] = 1 + max((of(w) for w in edges.get(v, ())), default=-1)
            return height[v]

        for v in sorted(nodes, key=lambda v: (-of(v), v)):
            print(f"  {of(v):2}  {v}")
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
