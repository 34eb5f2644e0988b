"""The workflow's plumbing: configuration keys and checks, code dependencies of rules, logs and run locks."""
