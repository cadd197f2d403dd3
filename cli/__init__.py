"""The splitmesh command line (typer)."""
