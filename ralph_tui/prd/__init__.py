"""The PRD: its model, every format it is read from, the store that writes it, the progress log.

Owns: ``model`` (``Prd``, ``Story``, the pick rule), ``format`` (reading any shape with
``path:line:col`` errors), ``store`` (atomic compare-and-swap writes), ``json_text`` (writes
that keep the file's layout), ``backlogs`` and ``importers`` (other tools' backlogs), and
``progress`` (the append-only log). May import ``safety`` and the base modules (``config``,
``errors``, ``events``), never the engine, the git package or a face.
"""
