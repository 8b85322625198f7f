"""Store errors that carry meaning to the HTTP layer."""


class DatabaseUnavailable(Exception):
    """The database did not answer in time (down, restarting, unreachable, or out of connections)."""


class IdempotencyKeyReused(Exception):
    """The caller's idempotency key was first used with a different request body."""


class IdempotencyKeyInFlight(Exception):
    """A request with the same idempotency key (same caller) is still being processed."""
