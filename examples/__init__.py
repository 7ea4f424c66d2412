"""Examples that run against Jobgate (importable from the repository root)."""
