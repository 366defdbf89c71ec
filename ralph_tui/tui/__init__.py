"""The Textual face of ralph-tui: a thin app over the engine (SPEC section 8)."""
