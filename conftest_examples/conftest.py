"""Example conftest: nothing is needed for a local run, the plugin provides every fixture.

For a cluster target, see cluster_conftest.py.example in this folder.
"""
