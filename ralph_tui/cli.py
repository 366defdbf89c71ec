"""Command line (SPEC section 7). Placeholder until the engine lands."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    return 0
