"""Rewrite a JSON document by splicing only the values that changed.

A PRD is written by humans and other tools; re-serialising the whole file would reformat every
number (``1e3`` -> ``1000.0``), every escape and every odd bit of spacing. Instead the old text
is indexed (where each value, key and member sits), the old and new values are compared, and
only the spans that differ are replaced; new members and items copy the layout of their
neighbours. Everything here is iterative or bounded by the depth of a change, so a deeply
nested document cannot exhaust the stack.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(r"-?(?:\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null|NaN|-?Infinity")
_WS = re.compile(r"[ \t\r\n]*")


@dataclass
class Node:
    """Where one JSON value sits in the text: ``text[start:end]``."""

    kind: str  # "object" | "array" | "scalar"
    start: int
    end: int = -1
    #: object members: (key, key start, key end, value)
    members: list[tuple[str, int, int, Node]] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)
    _want_key: bool = True
    _key: tuple[str, int, int] | None = None


def index(text: str) -> Node:
    """The value tree of a document already known to be valid JSON."""
    root: Node | None = None
    stack: list[Node] = []
    i, n = 0, len(text)

    def attach(node: Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        if parent.kind == "object":
            assert parent._key is not None
            key, ks, ke = parent._key
            parent.members.append((key, ks, ke, node))
            parent._key = None
        else:
            parent.items.append(node)

    while True:
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if i >= n:
            break
        c = text[i]
        if c in "{[":
            node = Node("object" if c == "{" else "array", i)
            attach(node)
            stack.append(node)
            i += 1
        elif c in "}]":
            stack.pop().end = i + 1
            i += 1
        elif c == ",":
            if stack and stack[-1].kind == "object":
                stack[-1]._want_key = True
            i += 1
        elif c == ":":
            i += 1
        elif c == '"':
            m = _STRING.match(text, i)
            assert m is not None
            top = stack[-1] if stack else None
            if top is not None and top.kind == "object" and top._want_key:
                top._key = (json.loads(m.group()), i, m.end())
                top._want_key = False
            else:
                attach(Node("scalar", i, m.end()))
            i = m.end()
        else:
            m = _SCALAR.match(text, i)
            if m is None or not m.group():
                raise ValueError(f"unexpected {c!r} at offset {i}")
            attach(Node("scalar", i, m.end()))
            i = m.end()
    if root is None:
        raise ValueError("empty document")
    return root


def locate(root: Node, path: tuple[str | int, ...]) -> Node | None:
    """The node at a path of keys and indexes, or the deepest one found on the way."""
    node = root
    for part in path:
        if node.kind == "object" and isinstance(part, str):
            # a repeated key: the last one counts, as in json.loads
            found = next((m[3] for m in reversed(node.members) if m[0] == part), None)
        elif node.kind == "array" and isinstance(part, int) and 0 <= part < len(node.items):
            found = node.items[part]
        else:
            found = None
        if found is None:
            return node
        node = found
    return node


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def same(a: Any, b: Any) -> bool:
    """JSON equality that tells 1, 1.0 and true apart (Python's == does not); iterative, so
    any depth json.loads accepted is fine."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


@dataclass(frozen=True)
class Style:
    """How new text is written: the file's indent unit, separators, escaping and newline."""

    indent: int | str | None
    item_sep: str
    key_sep: str
    ensure_ascii: bool
    newline: str


class _Splicer:
    def __init__(self, text: str, style: Style) -> None:
        self.text = text
        self.style = style
        self.edits: list[tuple[int, int, str]] = []

    # ---- rendering new values

    def _line_indent(self, offset: int) -> str:
        start = self.text.rfind("\n", 0, offset) + 1
        lead = _WS.match(self.text, start)
        assert lead is not None
        return lead.group().replace("\r", "").replace("\n", "")[: offset - start]

    def _unit(self) -> str:
        indent = self.style.indent
        if indent is None:
            return ""
        return indent if isinstance(indent, str) else " " * indent

    def render(self, value: Any, base: str) -> str:
        s = self.style
        text = json.dumps(
            value,
            indent=s.indent,
            separators=(s.item_sep, s.key_sep),
            ensure_ascii=s.ensure_ascii,
        )
        if s.indent is None:
            return text
        return text.replace("\n", s.newline + base)

    # ---- the diff

    def diff(self, node: Node, old: Any, new: Any) -> None:
        if same(old, new):
            return
        if isinstance(old, dict) and isinstance(new, dict) and node.kind == "object" and old:
            self._object(node, old, new)
        elif isinstance(old, list) and isinstance(new, list) and node.kind == "array" and old:
            self._array(node, old, new)
        else:
            self.edits.append(
                (node.start, node.end, self.render(new, self._line_indent(node.start)))
            )

    def _object(self, node: Node, old: dict[str, Any], new: dict[str, Any]) -> None:
        members = node.members
        kept = [m for m in members if m[0] in new]
        if not kept:
            base = self._line_indent(node.start)
            self.edits.append((node.start, node.end, self.render(new, base)))
            return
        first_kept = members.index(kept[0])
        last = {m[0]: pos for pos, m in enumerate(members)}
        for pos, (key, ks, _ke, value) in enumerate(members):
            if key in new:
                if last[key] == pos:  # a repeated key: only the last one counts (json.loads)
                    self.diff(value, old[key], new[key])
            elif pos < first_kept:
                self.edits.append((ks, members[pos + 1][1], ""))
            else:
                self.edits.append((members[pos - 1][3].end, value.end, ""))
        added = [k for k in new if k not in old]
        if not added:
            return
        # copy the layout of the existing members
        if len(members) >= 2:
            sep = self.text[members[0][3].end : members[1][1]]
        elif self.style.indent is None or "\n" not in self.text[node.start : members[0][1]]:
            sep = self._inline_sep()
        else:
            sep = "," + self.style.newline + self._line_indent(members[0][1])
        k0 = members[0]
        key_sep = self.text[k0[2] : k0[3].start]
        base = self._line_indent(k0[1])
        text = "".join(
            sep + json.dumps(k, ensure_ascii=self.style.ensure_ascii) + key_sep
            + self.render(new[k], base)
            for k in added
        )  # fmt: skip
        self.edits.append((kept[-1][3].end, kept[-1][3].end, text))

    def _array(self, node: Node, old: list[Any], new: list[Any]) -> None:
        items = node.items
        for i, (item, value) in enumerate(zip(items, new, strict=False)):
            if same(old[i], value):
                continue
            twin = next((j for j, o in enumerate(old) if same(o, value)), None)
            if twin is not None:  # a moved item keeps its exact text
                self.edits.append((item.start, item.end, self._slice(items[twin])))
            else:
                self.diff(item, old[i], value)
        if len(new) < len(old):
            keep = len(new)
            if keep == 0:
                self.edits.append((node.start, node.end, "[]"))
            else:
                self.edits.append((items[keep - 1].end, items[-1].end, ""))
        elif len(new) > len(old):
            if len(items) >= 2:
                sep = self.text[items[0].end : items[1].start]
            elif "\n" not in self.text[node.start : items[0].start]:
                sep = self._inline_sep()
            else:
                sep = "," + self.style.newline + self._line_indent(items[0].start)
            base = self._line_indent(items[0].start)
            text = "".join(sep + self.render(v, base) for v in new[len(old) :])
            self.edits.append((items[-1].end, items[-1].end, text))

    def _inline_sep(self) -> str:
        return self.style.item_sep if self.style.indent is None else ", "

    def _slice(self, node: Node) -> str:
        return self.text[node.start : node.end]

    def result(self) -> str:
        text = self.text
        for start, end, replacement in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            text = text[:start] + replacement + text[end:]
        return text


def splice(text: str, old: Any, new: Any, style: Style) -> str:
    """``text`` (the JSON of ``old``) changed to hold ``new``, touching only what differs."""
    root = index(text)
    splicer = _Splicer(text, style)
    splicer.diff(root, old, new)
    return splicer.result()
