"""Errors whose message is meant for the person who gave the input."""


class InputError(ValueError):
    """Bad user input (no face, unreadable file, tiny image, ...): show the message, not a traceback."""
