#!/usr/bin/env python3
"""Checks the relative links of the project's Markdown files.

Scans README.md, ARCHITECTURE.md and every docs/**/*.md (or the files given as arguments) for
Markdown links and images, `[text](target)`, `![alt](target)` and reference definitions
`[label]: target`, outside fenced code blocks and inline code. Links to http(s):, mailto: and
other schemes are not checked. A relative target must exist, relative to the Markdown file; a
`#anchor` (alone, or after a Markdown file) must be the GitHub-style slug of a heading in that
file: lowercase, punctuation other than `-` and `_` removed, spaces made `-`, and a repeated
heading given `-1`, `-2`, ...

Prints every broken link as `FILE:LINE: broken link TARGET (why)` and exits 1 if there is one;
otherwise prints `links: N checked, all resolve` and exits 0. Python 3 standard library only.

    python3 scripts/check-links.py [FILE.md ...]
"""

import os
import re
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.S)
# [text](target) or ![alt](target), with an optional title; the text may hold one level of
# brackets (an image inside a link).
LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def default_files():
    files = [os.path.join(ROOT, name) for name in ("README.md", "ARCHITECTURE.md")]
    docs = os.path.join(ROOT, "docs")
    for folder, dirs, names in os.walk(docs):
        dirs.sort()
        files.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".md"))
    return [f for f in files if os.path.isfile(f)]


def prose_lines(path):
    """(line number, text) of every line outside fenced code blocks."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    fence = None
    for number, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
        else:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip()[len(m.group(1)):].strip():
                fence = None
            continue
        yield number, line


def prose(path):
    """The file's text with fenced code blocks emptied and inline code blanked (an inline code
    span may run over lines, not over a blank line), so offsets keep their line numbers."""
    with open(path, encoding="utf-8") as f:
        count = f.read().count("\n") + 1
    outside = dict(prose_lines(path))
    text = "\n".join(outside.get(n, "") for n in range(1, count + 1))
    return INLINE_CODE.sub(
        lambda c: c.group(1) + re.sub(r"[^\n]", "x", c.group(2)) + c.group(1), text)


def slug(text):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


_anchors = {}


def anchors(path):
    """The anchors of a Markdown file's headings (ATX and setext), repeated ones numbered."""
    if path not in _anchors:
        seen = {}
        found = set()
        previous = None
        with open(path, encoding="utf-8") as f:
            raw = f.read().split("\n")
        outside = dict(prose_lines(path))
        for number, line in enumerate(raw, 1):
            text = None
            if number in outside:
                h = HEADING.match(line)
                if h:
                    text = h.group(2)
                elif SETEXT.match(line) and previous and previous.strip() \
                        and (number - 1) in outside and not HEADING.match(previous):
                    text = previous.strip()
            previous = line if number in outside else None
            if text is None:
                continue
            base = slug(text)
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        _anchors[path] = found
    return _anchors[path]


def targets(path):
    """(line number, target) of every link, image and reference definition."""
    text = prose(path)
    for m in LINK.finditer(text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1)
    for number, line in enumerate(text.split("\n"), 1):
        d = REFDEF.match(line)
        if d:
            yield number, d.group(1)


def check(target, source):
    """None if the target resolves, else why not."""
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1]
    if not target:
        return "empty target"
    if SCHEME.match(target) or target.startswith("//"):
        return None  # http(s):, mailto: and other schemes are not checked
    part, _, anchor = target.partition("#")
    part = urllib.parse.unquote(part.split("?", 1)[0])
    anchor = urllib.parse.unquote(anchor)
    if part:
        if part.startswith("/"):
            return "absolute path: use a path relative to the file"
        resolved = os.path.normpath(os.path.join(os.path.dirname(source), part))
        if not os.path.exists(resolved):
            return "no such file"
    else:
        resolved = source
    if anchor:
        if os.path.isdir(resolved) or not resolved.endswith(".md"):
            return "anchor on a file that is not Markdown"
        if anchor not in anchors(resolved):
            return f"no heading #{anchor} in {os.path.relpath(resolved, ROOT)}"
    return None


def main(argv):
    files = [os.path.abspath(a) for a in argv] or default_files()
    checked = 0
    broken = 0
    for path in files:
        shown = os.path.relpath(path, ROOT)
        for number, target in targets(path):
            if SCHEME.match(target.strip("<>")):
                continue
            checked += 1
            why = check(target, path)
            if why:
                broken += 1
                print(f"{shown}:{number}: broken link {target} ({why})")
    if broken:
        print(f"links: {checked} checked, {broken} broken", file=sys.stderr)
        return 1
    print(f"links: {checked} checked, all resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
