"""Attacks by a hostile agent through the real tools and engine (issue 8)."""
