"""The one exception type for user mistakes: the CLI prints its message as one line and exits 2."""


class UserError(Exception):
    """A problem the user can fix (bad path, bad config value, unknown mode...)."""
