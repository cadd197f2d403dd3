"""Demo workloads and their Istio configs (run from the repository root; not installed)."""
