"""Shared set-up of the test suite: pytester drives inner pytest runs of the plugin."""

pytest_plugins = ["pytester"]
