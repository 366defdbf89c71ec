"""Agent backends behind one protocol (``base.Agent``); ``create_agent`` picks one by name."""
