"""What keeps the agent's work contained and the user's secrets and terminal safe.

Owns: ``sandbox`` and ``seccomp`` (where agent-controlled code runs), ``workspace`` (paths
confined to the repository), ``credentials`` (secrets withheld and redacted), ``safe_open``
(files opened without following links), ``procgroup`` (a command in its own process group),
``text`` (control characters made visible) and ``tempdirs``. The bottom of ralph-tui: imports
only the base modules (``config``, ``errors``, ``events``, ``exit_codes``).
"""
