"""Docked bars for the moments the engine waits on the human."""
