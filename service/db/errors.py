"""Store errors that carry meaning to the HTTP layer."""


class DatabaseUnavailable(Exception):
    """The database did not answer in time (down, restarting, unreachable, or out of connections)."""
