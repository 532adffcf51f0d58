"""A trial forked from a process that has run Spark returns: the child drops the py4j connections
of the parent's other threads inside os.fork(), and py4j's log line there took a logging lock
another thread held at the fork, so the child hung until its limit killed it (CI's HistGradient-
Boosting dear points, which run after the Spark tests in the same process)."""

import logging
import threading

from dagml.time_limit import call_with_time_limit


def test_trials_forked_after_spark_while_another_thread_logs_all_return():
    from dagml.families.spark import session

    spark = session()
    stop = threading.Event()

    def chatter():  # as py4j's own finalizer thread does after a child has shut its socket down
        log = logging.getLogger("dagml.tests.chatter")
        while not stop.is_set():
            log.warning("x" * 200)

    def holds_a_py4j_connection():  # py4j keeps one connection per thread that calls the JVM
        spark.range(3).count()
        stop.wait()

    threads = [threading.Thread(target=chatter, daemon=True),
               threading.Thread(target=holds_a_py4j_connection, daemon=True)]
    for t in threads:
        t.start()
    try:
        answers = [call_with_time_limit(lambda: 42, 5.0) for _ in range(20)]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
    assert answers == [42] * 20
