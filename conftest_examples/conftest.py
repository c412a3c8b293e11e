"""Example conftest: nothing is needed for a local run, the plugin provides every fixture.

For a cluster target, see cluster_conftest.py.example in this folder.

Catching a slower model against a baseline, with the local server's slow-down knob
(``--seldon-local-extra-latency MS`` adds MS to every answer of the local model)::

    scripts/examples --load-baseline-save=main
    scripts/examples --load-baseline-compare=main --seldon-local-extra-latency=25 \\
        --load-html=report.html
"""
