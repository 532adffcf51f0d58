"""Errors a user can act on. Each message names the file, field, column or URI at fault."""


class DataError(ValueError):
    """The run's data cannot be trained on as configured."""


class FamilyFailed(RuntimeError):
    """Every trial of a family failed; the message carries the first reason."""
