#!/usr/bin/env python3
"""Checks that herald's modules import downward only and that no two files import each other.

Usage: python3 scripts/layers.py [--files] [--tests] [--src DIR]

Reads every `src/**/*.rs`, prints the cross-module dependency edges (module -> the modules it
imports; `--files` adds the file-level edges) and exits 1 when
  (a) a module imports a module of a higher layer (see LAYERS), or two modules that must stay
      apart (APART) import each other, or a module has no layer; or
  (b) there is an import cycle: between modules, or between files.
Exit 0 when everything holds. Only the standard library is used.

What counts as an import (a "path" is `a::b::c`):
  - `use` declarations whose path starts with `crate`, `super`, `self`, the lib's name (main.rs
    reaches the lib as `herald::`), or a name this file declares (`mod x;`) or imported;
  - paths in code that start the same way (`crate::metrics::inc(..)`, `nats::NatsBackplane`).
  Comments, doc comments (intra-doc links) and string literals are ignored. Calls of methods
  defined in another file (`impl` blocks split over files) are invisible: only paths count.
  Code under `#[cfg(test)]` (or `#[cfg(all(test, ..))]`), including files declared that way, is
  left out: tests may use any layer to check theirs. `--tests` includes it.

Where an import points: to the file that defines the item, not the one that routes it.
  `use crate::broker::TopicName` where broker/mod.rs says `pub use name::TopicName` is an edge to
  broker/name.rs. A `use` or `pub use` counts as a dependency of the file that has it only when
  that file itself uses the imported name in its code (or the item is a trait, or `as _`): a
  mod.rs that only re-exports a child's items does not depend on the child.

mod.rs and its children: declaring `mod child;` is not an import. A child that uses something
  defined in its mod.rs (`use super::State`) depends on the mod.rs; a mod.rs whose own code uses a
  child's item (`use child::Item` and then `Item`, or `child::Item` inline) depends on that child.
  Both at once is a cycle: the shared item belongs in a file of its own (or in the mod.rs, with the
  mod.rs not using the child). So a folder reads one of two ways: mod.rs on top (a facade built
  from its children, which never import it), or mod.rs at the bottom (shared state its children
  build on, which it only declares).

Modules: the first path segment under src/ (`src/broker/topic.rs` is in `broker`); lib.rs and
main.rs are the top and may import anything.
"""

import argparse
import os
import re
import sys

# The layers, lowest first: a module may import modules of its own layer or a lower one.
# Modules that do not exist (yet) are fine; a module that exists and is not listed is an error.
LAYERS = [
    ("ground", ["sync", "clock", "error", "config", "histogram", "tls", "logging"]),
    ("vocabulary", ["protocol"]),
    ("engine", ["broker", "auth"]),
    ("backplane", ["cluster"]),
    ("metrics", ["metrics"]),
    ("door", ["node"]),
    ("transports", ["server"]),
    ("client", ["client", "cli"]),  # the CLI: src/cli.rs today, src/client/ after issue 14
]
# Modules of one layer that may not import each other at all, not even one way.
APART = [{"broker", "auth"}]
# The crate roots: the top, allowed to import anything.
ROOTS = {"lib.rs": "lib", "main.rs": "main"}
# The lib crate's name, as the binary (main.rs) spells it.
CRATE = "herald"

LAYER_OF = {m: (i, name) for i, (name, mods) in enumerate(LAYERS) for m in mods}
TOP = (len(LAYERS), "top")

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ITEM_KINDS = r"(?:struct|enum|union|trait|type|fn|const|static|mod)"


def blank(text):
    """Spaces for every character but newlines, so offsets and line numbers stay put."""
    return re.sub(r"[^\n]", " ", text)


def strip(src):
    """The source with comments blanked and string/char literal contents blanked."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:]) and not re.match(r"\w", src[i - 1 : i] or " "):
            hashes = re.match(r"r(#*)\"", src[i:]).group(1)
            start = i + 2 + len(hashes)
            end = src.find('"' + hashes, start)
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(src[i:start] + blank(src[start:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('"' + blank(src[i + 1 : j]) + '"')
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\'', '\u{..}') or a lifetime/label ('a).
            if src[i + 1 : i + 2] == "\\":
                j = src.find("'", i + 3)
                j = n if j < 0 else j
                out.append("'" + blank(src[i + 1 : j]) + "'")
                i = j + 1
            elif src[i + 2 : i + 3] == "'":
                out.append("' '")
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    """The offset just past the `}` closing the `{` at `open_at`."""
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def is_test_cfg(predicate):
    """`test` or `all(.., test, ..)`: code that exists only in test builds."""
    predicate = re.sub(r"\s+", "", predicate)
    if predicate == "test":
        return True
    m = re.fullmatch(r"all\((.*)\)", predicate)
    return bool(m) and "test" in split_top(m.group(1))


def split_top(text):
    """`a, f(b, c), d` -> [`a`, `f(b,c)`, `d`]: split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for c in text:
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += c == "("
        depth -= c == ")"
        cur += c
    return [p for p in parts + [cur] if p]


def drop_test_code(code):
    """Blanks every item under a test-only `#[cfg(..)]`; returns the code and the names of the
    test-only `mod x;` declarations."""
    test_mods = set()
    pos = 0
    while True:
        m = re.compile(r"#\s*\[\s*cfg\s*\(").search(code, pos)
        if not m:
            return code, test_mods
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += code[j] == "("
            depth -= code[j] == ")"
            j += 1
        predicate = code[m.end() : j - 1]
        close = code.find("]", j)
        if not is_test_cfg(predicate) or close < 0:
            pos = m.end()
            continue
        semi, brace = code.find(";", close), code.find("{", close)
        if brace < 0 or (0 <= semi < brace):
            end = semi + 1
            decl = re.search(r"\bmod\s+(" + IDENT + r")\s*;", code[close:end])
            if decl:
                test_mods.add(decl.group(1))
        else:
            end = matching_brace(code, brace)
        code = code[: m.start()] + blank(code[m.start() : end]) + code[end:]
        pos = end


def parse_use_tree(tokens, i, prefix):
    """Expands a `use` tree into (path, bound name or None, is_glob) triples."""
    path = list(prefix)
    while i < len(tokens):
        tok = tokens[i]
        if tok == "{":
            items, i = [], i + 1
            while i < len(tokens) and tokens[i] != "}":
                sub, i = parse_use_tree(tokens, i, path)
                items += sub
                if i < len(tokens) and tokens[i] == ",":
                    i += 1
            return items, i + 1
        if tok == "*":
            return [(path, None, True)], i + 1
        if tok == "::":  # a leading `::`
            i += 1
            continue
        i += 1
        if tok == "self" and path and (i >= len(tokens) or tokens[i] != "::"):
            name = path[-1]
        else:
            path.append(tok)
            if i < len(tokens) and tokens[i] == "::":
                i += 1
                continue
            name = tok
        if i + 1 < len(tokens) and tokens[i] == "as":
            name, i = tokens[i + 1], i + 2
        return [(path, name, False)], i
    return [(path, None, False)], i


class Use:
    """One path a `use` declaration brings in."""

    def __init__(self, path, name, glob, pos):
        self.path, self.name, self.glob, self.pos = path, name, glob, pos


class File:
    """One source file: its module path, code without comments/strings/test code, and imports."""

    def __init__(self, src_dir, rel, include_tests):
        self.rel = rel
        with open(os.path.join(src_dir, rel), encoding="utf-8") as f:
            self.source = f.read()
        self.lines = self.source.split("\n")
        code = strip(self.source)
        self.test_mods = set()
        if not include_tests:
            code, self.test_mods = drop_test_code(code)
        parts = rel[:-3].split("/")
        if rel in ROOTS:
            self.module, self.top = (), ROOTS[rel]
        else:
            if parts[-1] == "mod":
                parts = parts[:-1]
            self.module, self.top = tuple(parts), parts[0]
        self.crate = "bin" if rel == "main.rs" else "lib"
        self.children = set(re.findall(r"\bmod\s+(" + IDENT + r")\s*;", code))
        # Inline `mod x { .. }`: paths inside resolve from module + (x,).
        self.inline = []
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", code):
            self.inline.append((m.start(), matching_brace(code, m.end() - 1), m.group(1)))
        self.uses = []
        for m in re.finditer(r"\buse\s+([^;]*);", code):
            tokens = re.findall(IDENT + r"|::|[{},*]", m.group(1))
            for path, name, glob in parse_use_tree(tokens, 0, [])[0]:
                self.uses.append(Use(path, name, glob, m.start()))
            code = code[: m.start()] + blank(code[m.start() : m.end()]) + code[m.end() :]
        self.code = code  # without `use` declarations

    def scope(self, pos):
        """The module path code at `pos` resolves from (inside inline modules: deeper)."""
        return self.module + tuple(name for start, end, name in self.inline if start <= pos < end)

    def line_of(self, pos):
        return self.source.count("\n", 0, pos) + 1

    def defines(self, name):
        pattern = r"\b" + ITEM_KINDS + r"\s+" + re.escape(name) + r"\b|\bmacro_rules!\s*" + re.escape(name) + r"\b"
        return re.search(pattern, self.code) is not None

    def defines_trait(self, name):
        return re.search(r"\btrait\s+" + re.escape(name) + r"\b", self.code) is not None

    def uses_word(self, name):
        return re.search(r"(?<![\w$])" + re.escape(name) + r"\b", self.code) is not None


class Crate:
    """Every file of src/, and how a path resolves to the file that defines it."""

    def __init__(self, src_dir, include_tests):
        rels = []
        for root, _dirs, names in os.walk(src_dir):
            for n in names:
                if n.endswith(".rs"):
                    rels.append(os.path.relpath(os.path.join(root, n), src_dir).replace(os.sep, "/"))
        self.files = {rel: File(src_dir, rel, include_tests) for rel in sorted(rels)}
        self.by_module = {f.module: f for f in self.files.values() if f.crate == "lib"}
        # Files declared under a test-only cfg are test code as a whole.
        for f in list(self.files.values()):
            for child in f.test_mods:
                test_file = self.by_module.get(f.module + (child,))
                if test_file:
                    del self.files[test_file.rel]
                    del self.by_module[test_file.module]

    def absolute(self, f, scope, path):
        """`path` as written in `f` (at module `scope`) from the lib's root, or None if external."""
        if not path:
            return None
        head, rest = path[0], list(path[1:])
        if head == CRATE and f.crate == "bin":
            return rest
        if f.crate == "bin":
            return None
        if head == "crate":
            return rest
        if head == "self":
            return list(scope) + rest
        if head == "super":
            base = list(scope)
            while path and path[0] == "super":
                base, path = base[:-1], path[1:]
            return base + list(path)
        if head in f.children:
            return list(f.module) + list(path)
        for use in f.uses:
            if use.name == head and not use.glob:
                target = self.absolute(f, f.scope(use.pos), use.path)
                return None if target is None else target + rest
        return None

    def locate(self, path, depth=0):
        """The file defining what `path` (from the lib root) names."""
        for cut in range(len(path), -1, -1):
            f = self.by_module.get(tuple(path[:cut]))
            if f:
                break
        else:
            return None
        rest = path[cut:]
        if not rest or f.defines(rest[0]) or depth > 10:
            return f
        # Not defined there: follow the file's own import of that name (a re-export).
        for use in f.uses:
            if use.name == rest[0] and not use.glob:
                target = self.absolute(f, f.scope(use.pos), use.path)
                if target is not None:
                    return self.locate(target + rest[1:], depth + 1) or f
        for use in f.uses:
            if use.glob:
                target = self.absolute(f, f.scope(use.pos), use.path)
                g = self.by_module.get(tuple(target or ()))
                if g and g.defines(rest[0]):
                    return g
        return f

    def edges(self):
        """{(from file, to file): [offset of the import in `from`, ..]}, self-edges left out."""
        found = {}

        def add(f, pos, path):
            target = self.locate(path)
            if target is not None and target is not f:
                found.setdefault((f.rel, target.rel), []).append(pos)

        for f in self.files.values():
            for use in f.uses:
                path = self.absolute(f, f.scope(use.pos), use.path)
                if path is None:
                    continue
                target = self.locate(path)
                if target is None:
                    continue
                names_a_module = target.module == tuple(path) and target.crate == "lib"
                if use.glob or use.name == "_":
                    used = True
                elif names_a_module:
                    used = False  # a module alias counts where `alias::x` is written (below)
                else:
                    used = f.uses_word(use.name) or target.defines_trait(path[-1])
                if used:
                    add(f, use.pos, path)
            pattern = r"(?<![\w:$])(" + IDENT + r"(?:\s*::\s*" + IDENT + r")+)"
            for m in re.finditer(pattern, f.code):
                segments = re.split(r"\s*::\s*", m.group(1))
                path = self.absolute(f, f.scope(m.start()), segments)
                if path is not None:
                    add(f, m.start(), path)
        return found


def sccs(nodes, edges):
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    graph = {n: sorted({b for a, b in edges if a == n}) for n in nodes}
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter[0]
                counter[0] += 1
                stack.append(node)
                on_stack.add(node)
            if i < len(graph[node]):
                work.append((node, i + 1))
                nxt = graph[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def layer(module):
    if module in ROOTS.values():
        return TOP
    return LAYER_OF.get(module)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", action="store_true", help="also print the file-level edges")
    parser.add_argument("--tests", action="store_true", help="include #[cfg(test)] code")
    parser.add_argument("--src", default=os.path.join(here, "..", "src"), help="the src directory")
    args = parser.parse_args()

    crate = Crate(os.path.normpath(args.src), args.tests)
    file_edges = crate.edges()
    files = crate.files

    def where(a, b, limit=2):
        f = files[a]
        shown = []
        for pos in sorted(set(file_edges[(a, b)]), key=f.line_of)[:limit]:
            line = f.line_of(pos)
            shown.append(f"src/{a}:{line}  {f.lines[line - 1].strip()[:100]}")
        return shown

    module_edges = {}
    for (a, b) in file_edges:
        ma, mb = files[a].top, files[b].top
        if ma != mb:
            module_edges.setdefault((ma, mb), []).append((a, b))
    modules = sorted({f.top for f in files.values()}, key=lambda m: ((layer(m) or (99,))[0], m))

    def label(m):
        lay = layer(m)
        return f"{m} [{lay[0]} {lay[1]}]" if lay else f"{m} [no layer]"

    print("modules (-> the modules each imports), lowest layer first:")
    width = max(len(label(m)) for m in modules)
    for m in modules:
        targets = sorted({b for (a, b) in module_edges if a == m})
        print(f"  {label(m):<{width}}  -> {', '.join(targets) if targets else '(nothing)'}")
    if args.files:
        print("\nfiles (-> the files each imports):")
        for rel in sorted(files):
            targets = sorted({b for (a, b) in file_edges if a == rel})
            if targets:
                print(f"  {rel} -> {', '.join(targets)}")

    problems = []
    for m in modules:
        if layer(m) is None:
            problems.append([f"module `{m}` has no layer: add it to LAYERS in scripts/layers.py"])
    for (a, b), pairs in sorted(module_edges.items()):
        la, lb = layer(a), layer(b)
        if la is None or lb is None:
            continue
        if lb[0] > la[0]:
            kind = f"upward import: {label(a)} imports {label(b)}"
        elif any({a, b} <= group for group in APART):
            kind = f"{a} and {b} must stay apart, but {a} imports {b}"
        else:
            continue
        shown = [w for pair in sorted(set(pairs)) for w in where(*pair, limit=1)]
        problems.append([kind] + sorted(set(shown), key=shown.index))
    for comp in sccs(set(m for m in modules), set(module_edges)):
        lines = [f"module cycle: {', '.join(comp)}"]
        for (a, b), pairs in sorted(module_edges.items()):
            if a in comp and b in comp:
                lines.append(f"{a} -> {b}: " + ", ".join(sorted({p[0] for p in pairs})))
        problems.append(lines)
    for comp in sccs(set(files), set(file_edges)):
        lines = [f"file cycle: {', '.join(comp)}"]
        for (a, b) in sorted(file_edges):
            if a in comp and b in comp:
                lines.append(f"{a} -> {b}")
                lines += ["  " + w for w in where(a, b)]
        problems.append(lines)

    if not problems:
        print("\nok: every import goes to the same or a lower layer, and no files import each other")
        return 0
    print(f"\n{len(problems)} problem(s):")
    for p in problems:
        print(f"- {p[0]}")
        for line in p[1:]:
            print(f"    {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
