"""The workflow's plumbing: configuration keys and checks, rules' code dependencies, logs, locks."""
