"""The benchmark harness: one command, figures for docs/PERFORMANCE.md."""
