"""Error types with one-line messages that name what is wrong and what was expected."""


class InputError(ValueError):
    """Bad user input: a config key, a file, an array, an SAE. The message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class StoreError(RuntimeError):
    """The content-addressed store is inconsistent (a node that fails verification)."""
