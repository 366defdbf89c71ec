"""The remote face's core: a run served over HTTP + WebSocket (no Textual import here).

``hub.RunHub`` is one more event sink and the supervisor's remote half; ``http`` puts it on a
socket behind a token; ``client.RemoteRun`` is what an attached TUI drives instead of an engine.
"""
