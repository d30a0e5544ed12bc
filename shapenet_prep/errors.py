"""Errors raised while reading source shapes."""


class MalformedShapeError(ValueError):
    """A source file cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
