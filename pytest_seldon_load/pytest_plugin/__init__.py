"""The pytest layer: options, markers, fixtures, hooks and the session's run registry.

Everything pytest-specific lives here, so the library (engine, results, replays, baselines,
reports, cluster access) imports without pytest, for the command line and for other callers.
"""
