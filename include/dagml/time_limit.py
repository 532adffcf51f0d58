"""Run a function in a forked child that is killed when its time is up: a hard bound on one trial.

hyperopt's own ``timeout`` only stops launching trials, so a trial started just before the end
of a budget runs to completion (a 10 s search once took 35.7 s). A forked child shares the
parent's data without copying it and can be killed at any point of a fit. Only what the child
returns crosses back, pickled through a pipe.

Fork is safe here because the process that forks runs one thread per library (``dagml.threads``:
a family given more threads raises its limit only inside the child); R (rpy2) and Spark (a JVM
gateway) are not forked: their searches keep the soft bound.

Fits that can stop early (``seconds_left``) do so before the kill, so a family whose first
point is dear on large data still returns a model (fewer trees) instead of nothing.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from contextlib import contextmanager


# A fit in a time-limited child may stop itself before the kill (a booster's callback, a forest
# grown in chunks) and still give a model: it reads ``seconds_left()``. The child's deadline is
# this share of its limit, leaving time to predict the validation rows and send them back.
SOFT_SHARE = 0.8
_deadline: float | None = None  # monotonic; set only in a time-limited child


class TimeLimitExceeded(Exception):
    pass


def seconds_left() -> float | None:
    """What the current fit may still spend, or None when nothing bounds it (outside a time-limited call)."""
    return None if _deadline is None else _deadline - time.monotonic()


class Deadline:
    """When a fit in a time-limited child must stop growing (trees, boosting rounds), and whether it
    did: the fit keeps what it grew so far, so the trial still scores a model."""

    def __init__(self, at: float):
        self.at, self.hit = at, False

    @classmethod
    def now(cls) -> Deadline | None:
        """The current fit's deadline; None when nothing bounds it (a final fit, a test)."""
        left = seconds_left()
        return None if left is None else cls(time.monotonic() + left)

    def passed(self) -> bool:
        self.hit = self.hit or time.monotonic() >= self.at
        return self.hit


@contextmanager
def share(fraction: float):
    """Narrow the deadline to ``fraction`` of the time left for the block (e.g. one of k folds);
    nothing changes outside a time-limited call."""
    global _deadline
    outer = _deadline
    if outer is not None:
        _deadline = time.monotonic() + max(0.0, outer - time.monotonic()) * fraction
    try:
        yield
    finally:
        _deadline = outer


class ChildFailed(RuntimeError):
    """The function raised in the child: the message is its ``Type: message``."""


def call_with_time_limit(fn, seconds: float | None):
    """``fn()`` if it returns within ``seconds``; else the child is killed and TimeLimitExceeded raised.
    An exception in the child is raised again here with its type name and message. ``seconds``
    None: no limit (a fit that must not run in this process, see ``dagml.threads``)."""
    if seconds is not None and seconds <= 0:
        raise TimeLimitExceeded("no time left in the budget")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to the caller's code
        global _deadline
        os.close(read_fd)
        _deadline = None if seconds is None else time.monotonic() + SOFT_SHARE * seconds
        _child(fn, write_fd)
    os.close(write_fd)
    deadline = None if seconds is None else time.monotonic() + seconds
    chunks = []
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not select.select([read_fd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise TimeLimitExceeded(f"stopped after {seconds:.1f} s, the time left in the budget")
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError("the trial's process died without a result (killed, or out of memory)")
    ok, value = pickle.loads(b"".join(chunks))
    if ok:
        return value
    raise ChildFailed(value)


def _child(fn, write_fd) -> None:
    code = 0
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1), os.dup2(devnull, 2)  # a library's warnings must not interleave with the task log
        try:
            payload = (True, fn())
        except BaseException as exc:  # noqa: BLE001  (reported to the parent, which decides)
            payload = (False, f"{type(exc).__name__}: {exc}")
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
