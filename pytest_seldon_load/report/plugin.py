"""The reporting side of the plugin: baselines, JSON/JUnit/HTML reports, live progress."""
