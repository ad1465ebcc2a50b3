"""The one exception type whose message is shown to a person as is."""


class LabelloopError(Exception):
    """A failure a person can act on. Its message is one line naming the thing and what to do."""
