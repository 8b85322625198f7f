"""The four layers of checks; each module's `check(repository)` returns its findings."""
