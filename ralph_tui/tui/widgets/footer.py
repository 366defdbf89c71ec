"""Textual's ``Footer``, rebuilt only when the keys it shows change.

Textual's footer recomposes on every bindings signal: each run-state change, focus move and
``refresh_bindings`` call removes and mounts all its keys and lays the whole screen out again
(10-30 ms at 200x50), even when the same keys come back. Most signals during a run change
nothing the footer shows, so this one compares what it would show and keeps its keys when equal.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.screen import Screen
from textual.widgets import Footer


class SteadyFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._shown: Hashable | None = None

    def shown_keys(self) -> tuple[Hashable, ...]:
        """What ``compose`` would draw: each shown binding's key, label, action and state."""
        app = self.app
        return (
            self.show_command_palette,
            self.compact,
            tuple(
                (
                    binding.key,
                    app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    binding.group,
                    enabled,
                    tooltip,
                )
                for _, binding, enabled, tooltip in self.screen.active_bindings.values()
                if binding.show or binding.key == app.COMMAND_PALETTE_BINDING
            ),
        )

    def bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen and screen.app.app_focus:
            shown = self.shown_keys()
            if shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)
