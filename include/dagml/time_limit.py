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

import fcntl
import os
import pickle
import select
import signal
import time
from contextlib import contextmanager

from dagml.errors import OutOfMemory


# A fit in a time-limited child may stop itself before the kill (a booster's callback, a forest
# grown in chunks) and still give a model: it reads ``seconds_left()``. The child's deadline is
# this share of its limit (by default: a family may need more room, ``Family.deadline_share``),
# leaving time to predict the validation rows and send them back.
SOFT_SHARE = 0.8
PIPE_BYTES = 1 << 20
_deadline: float | None = None  # monotonic; set only in a time-limited child
_room = float("inf")  # seconds from the child's deadline to its kill


class TimeLimitExceeded(Exception):
    pass


def seconds_left() -> float | None:
    """What the current fit may still spend, or None when nothing bounds it (outside a time-limited call)."""
    return None if _deadline is None else _deadline - time.monotonic()


class Deadline:
    """When a fit in a time-limited child must stop growing (trees, boosting rounds), and whether it
    did: the fit keeps what it grew so far, so the trial still scores a model. ``room``: the seconds
    from ``at`` to the kill, which a step begun before ``at`` may overrun by."""

    def __init__(self, at: float, room: float = float("inf")):
        self.at, self.room, self.hit = at, room, False

    @classmethod
    def now(cls) -> Deadline | None:
        """The current fit's deadline; None when nothing bounds it (a final fit, a test)."""
        left = seconds_left()
        return None if left is None else cls(time.monotonic() + left, _room)

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


# The kernel's out-of-memory killer picks the process with the highest badness (its memory plus
# this adjustment, -1000..1000): a fit's forked child offers itself first, so the task process
# (and the worker that runs it) survives to record why.
TRIAL_OOM_SCORE_ADJ = 1000


def call_with_time_limit(fn, seconds: float | None, memory_mb: float | None = None, *, same_error: bool = False,
                         soft_share: float = SOFT_SHARE):
    """``fn()`` if it returns within ``seconds``; else the child is killed and TimeLimitExceeded raised.
    An exception in the child is raised again here with its type name and message (``same_error``:
    the exception itself, when it pickles). ``seconds`` None: no limit (a fit that must not run in
    this process, see ``dagml.threads``).

    Running out of memory raises ``dagml.errors.OutOfMemory``: the child raised ``MemoryError``
    (``memory_mb`` caps what it may allocate above this process, RLIMIT_AS), or it was killed by a
    SIGKILL this process did not send (the out-of-memory killer's signal). The child's stdout and
    stderr go to /dev/null (a library's warnings must not interleave with the task log). A fit
    reading ``seconds_left()`` sees ``soft_share`` of ``seconds``."""
    if seconds is not None and seconds <= 0:
        raise TimeLimitExceeded("no time left in the budget")
    read_fd, write_fd = os.pipe()
    try:  # a model of a few hundred MB crosses in 1 MB steps rather than the default 64 kB
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, AttributeError):  # not Linux, or above the system's pipe-max-size
        pass
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns to the caller's code
        global _deadline, _room
        os.close(read_fd)
        _deadline = None if seconds is None else time.monotonic() + soft_share * seconds
        _room = float("inf") if seconds is None else (1 - soft_share) * seconds
        _child(fn, write_fd, memory_mb, parent)
    os.close(write_fd)
    deadline = None if seconds is None else time.monotonic() + seconds

    def read_into(view) -> bool:
        """Fill ``view`` from the pipe; False when the child ended first. Past the deadline: kill."""
        got = 0
        while got < len(view):
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not select.select([read_fd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise TimeLimitExceeded(f"stopped after {seconds:.1f} s, the time left in the budget")
            n = os.readv(read_fd, [view[got:]])
            if n == 0:
                return False
            got += n
        return True

    status, payload = 0, None
    try:
        count = bytearray(8)
        if read_into(memoryview(count)):
            sizes = bytearray(8 * int.from_bytes(count, "little"))
            if read_into(memoryview(sizes)):
                parts = [bytearray(int.from_bytes(sizes[i:i + 8], "little")) for i in range(0, len(sizes), 8)]
                if all(read_into(memoryview(part)) for part in parts):
                    payload = parts
    finally:
        os.close(read_fd)
        status = os.waitpid(pid, 0)[1]
    if payload is None:
        raise _died(status)
    ok, value, error, out_of_memory = pickle.loads(payload[0], buffers=payload[1:])
    if ok:
        return value
    if out_of_memory:
        raise OutOfMemory(value)
    if same_error and error is not None:
        try:
            error = pickle.loads(error)
        except Exception:  # noqa: BLE001  (a class that does not unpickle here: its message will do)
            error = None
        if isinstance(error, BaseException):
            raise error
    raise ChildFailed(value)


_EXIT_OUT_OF_MEMORY = 3  # a child that ran out of memory after its fit, while reporting


def _died(status: int) -> Exception:
    """Why a child ended without sending a result."""
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return OutOfMemory("killed by SIGKILL, the signal of the kernel's out-of-memory killer")
    if os.WIFSIGNALED(status):
        return RuntimeError(f"its process died of {signal.Signals(os.WTERMSIG(status)).name} without a result")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _EXIT_OUT_OF_MEMORY:
        return OutOfMemory("MemoryError while sending its result to the task process")
    return RuntimeError(f"its process exited with code {os.waitstatus_to_exitcode(status)} without a result")


def _limit_memory(memory_mb: float) -> None:
    """At most ``memory_mb`` more address space than the child has now (it starts as the parent's)."""
    import resource

    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = mapped + int(memory_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _die_with(parent: int) -> None:
    """SIGKILL this child when ``parent`` dies (Linux's PR_SET_PDEATHSIG): a worker killed mid-search
    must not leave its search running on, writing beside the retry's."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _child(fn, write_fd, memory_mb: float | None, parent: int) -> None:
    code = 0
    try:
        _die_with(parent)
        try:
            with open("/proc/self/oom_score_adj", "w") as adj:
                adj.write(str(TRIAL_OOM_SCORE_ADJ))
        except OSError:  # not Linux, or a kernel that refuses: the OOM killer decides alone
            pass
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1), os.dup2(devnull, 2)
        try:
            if memory_mb:
                _limit_memory(memory_mb)
            payload = (True, fn(), None, False)
        except BaseException as exc:  # noqa: BLE001  (reported to the parent, which decides)
            exc = exc.with_traceback(None)  # let go of the frames (and the arrays) of the failed fit
            try:
                error = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001  (an exception that does not pickle crosses as its message)
                error = None
            payload = (False, f"{type(exc).__name__}: {exc}", error, isinstance(exc, MemoryError))
        # arrays (a forest's trees, predictions) cross as they lie in memory, not copied into the pickle
        buffers = []
        head = pickle.dumps(payload, protocol=5, buffer_callback=buffers.append)
        parts = [memoryview(head), *(b.raw() for b in buffers)]
        sizes = [len(parts)] + [part.nbytes for part in parts]
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(b"".join(n.to_bytes(8, "little") for n in sizes))
            for part in parts:
                pipe.write(part)
    except MemoryError:  # the result itself did not fit (pickling copies it) under memory_mb
        code = _EXIT_OUT_OF_MEMORY
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
