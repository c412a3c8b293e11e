"""Ways to show load results: the terminal table (JSON, JUnit and HTML build on the same data)."""
