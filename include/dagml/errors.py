"""Errors a user can act on. Each message names the file, field, column, connection or URI at fault.

Whether retrying can help is decided here, once: ``PERMANENT_ERRORS`` fail a task at once;
``SourceUnavailable`` (and any other error) is left to the task's retries.
"""


class DataError(ValueError):
    """The run's data cannot be trained on as configured."""


class FamilyFailed(RuntimeError):
    """Every trial of a family failed; the message carries the first reason."""


class OutOfMemory(FamilyFailed):
    """A fit ran out of memory: its forked process raised ``MemoryError``, hit its ``memory_mb`` limit,
    or was killed by SIGKILL (what the kernel's out-of-memory killer sends). The same rows would run
    out again, so it is not retried."""


class ConnectionNotFound(LookupError):
    """An Airflow connection dagml needs is not defined; the message names it and how to add it."""


class SourceUnavailable(ConnectionError):
    """A source, artifact store or database could not be reached (network, timeout, throttling):
    a retry may succeed."""


class ChecksumMismatch(RuntimeError):
    """A stored model's bytes differ from the SHA-256 recorded for it: it is never loaded."""


PERMANENT_ERRORS = (DataError, FamilyFailed, ConnectionNotFound, ChecksumMismatch)
