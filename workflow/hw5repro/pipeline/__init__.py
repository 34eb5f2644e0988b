"""The workflow's plumbing: configuration keys, code dependencies of rules, logs and run locks."""
