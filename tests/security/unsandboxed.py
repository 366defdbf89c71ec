"""The engine-side rules (issue 8 sections 3-4) must hold without a sandbox: the tests that use
this run with ``sandbox.mode = "off"`` once the config has that table (before the sandbox
lands, every run is unsandboxed anyway)."""

from __future__ import annotations

from typing import Any

from ralph_tui.config import RalphConfig

_HAS_SANDBOX = "sandbox" in RalphConfig.model_fields
# overrides for make_engine(**OFF)
OFF: dict[str, Any] = {"sandbox": {"mode": "off"}} if _HAS_SANDBOX else {}
# a top-level line for make_repo(extra_config=...)
OFF_TOML = 'sandbox = { mode = "off" }' if _HAS_SANDBOX else ""
