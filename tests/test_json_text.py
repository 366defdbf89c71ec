"""The splicing writer: any change to any document, in any layout, reads back as the change.

Seeded random documents and edits (set, add, delete, swap, append, pop, nested), in several
layouts including odd spacing; the result must parse to exactly the new value (1, 1.0 and true
kept apart) and untouched values keep their exact text.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import pytest

from ralph_tui.prd import json_text
from ralph_tui.prd.format import detect_style

SCALARS: list[Any] = [1, 1.5, -2, 0, True, False, None, "s", "é\n", 1e20, []]


def value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return copy.deepcopy(rng.choice(SCALARS))
    if roll < 0.7:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def mutate(rng: random.Random, node: Any) -> Any:
    if isinstance(node, dict):
        keys = list(node)
        op = rng.choice(["set", "add", "del", "nested"])
        if op == "add" or not keys:
            node[f"n{rng.randint(0, 99)}"] = value(rng, 2)
        elif op == "del":
            del node[rng.choice(keys)]
        elif op == "set":
            node[rng.choice(keys)] = value(rng, 2)
        else:
            key = rng.choice(keys)
            node[key] = mutate(rng, node[key])
        return node
    if isinstance(node, list):
        op = rng.choice(["append", "pop", "swap", "set", "nested"])
        if op == "append" or not node:
            node.append(value(rng, 2))
        elif op == "pop":
            node.pop()
        elif op == "swap" and len(node) > 1:
            i, j = rng.sample(range(len(node)), 2)
            node[i], node[j] = node[j], node[i]
        elif op == "set":
            node[rng.randrange(len(node))] = value(rng, 2)
        else:
            i = rng.randrange(len(node))
            node[i] = mutate(rng, node[i])
        return node
    return value(rng, 2)


def odd_spacing(rng: random.Random, text: str) -> str:
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
    for i in range(0, len(parts), 2):  # outside strings only
        parts[i] = re.sub(
            r"([,:\[{])", lambda m: m.group(1) + rng.choice(["", " ", "\n   ", "\t"]), parts[i]
        )
    return "".join(parts)


LAYOUTS: list[dict[str, Any]] = [
    {"indent": 2},
    {"indent": 4, "ensure_ascii": False},
    {"indent": "\t"},
    {"separators": (",", ":")},
    {},
]


@pytest.mark.parametrize("seed", range(4))
def test_random_changes_read_back_exactly(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        doc = {f"k{i}": value(rng) for i in range(rng.randint(1, 4))}
        layout = rng.choice([*LAYOUTS, None])
        text = odd_spacing(rng, json.dumps(doc)) if layout is None else json.dumps(doc, **layout)
        new = mutate(rng, copy.deepcopy(doc))
        out = json_text.splice(text, doc, new, detect_style(text))
        assert json_text.same(json.loads(out), new), (text, out)


def test_untouched_values_keep_their_spelling() -> None:
    text = '{"a": 1e3, "b": [1.0, 2.50, "\\u00e9"], "c": {"d": false},  "e" : -0.0}'
    doc = json.loads(text)
    new = copy.deepcopy(doc)
    new["c"]["d"] = True
    new["f"] = 31.1
    out = json_text.splice(text, doc, new, detect_style(text))
    assert (
        out == '{"a": 1e3, "b": [1.0, 2.50, "\\u00e9"], "c": {"d": true},  "e" : -0.0, "f": 31.1}'
    )


def test_same_tells_json_types_apart() -> None:
    assert json_text.same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not json_text.same(1, 1.0) and not json_text.same(1, True)
    assert not json_text.same({"a": 1, "b": 2}, {"b": 2, "a": 1})  # key order matters on disk
