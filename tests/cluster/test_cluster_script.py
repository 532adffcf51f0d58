"""airflow_config/cluster.py's own duties: start what is missing, stop exactly what it started."""

import argparse
import time

import pytest

from tests.cluster.conftest import _free_port, cluster_script as _script

pytestmark = pytest.mark.cluster


def _answers(port: int) -> bool:
    return _script()._redis_ping("127.0.0.1", port)


def test_a_missing_redis_is_started_kept_on_disk_and_stopped_by_down(tmp_path, capsys):
    cluster, port = _script(), _free_port()
    args = argparse.Namespace(redis=f"redis://127.0.0.1:{port}/0", api_port=_free_port(), home=str(tmp_path))
    cluster._ensure_redis(tmp_path, args)
    assert _answers(port)
    assert (tmp_path / "pids" / "redis.pid").exists() and (tmp_path / "redis").is_dir()
    cluster._ensure_redis(tmp_path, args)  # one answers now: nothing more is started
    assert [p.name for p in (tmp_path / "pids").iterdir()] == ["redis.pid"]
    assert "warning" not in capsys.readouterr().out

    import redis

    redis.Redis.from_url(args.redis).config_set("appendonly", "no")  # as the machine's shared Redis is
    cluster._ensure_redis(tmp_path, args)
    assert "keeps no append-only file: if it restarts, the tasks queued in it are lost" in capsys.readouterr().out

    started = time.monotonic()
    cluster.down(args)
    # the Redis it started is its child here: exited, a zombie until reaped, which is not alive
    assert time.monotonic() - started < 15, "down waited out its 30 s for a service that had exited"
    deadline = time.time() + 10
    while _answers(port) and time.time() < deadline:
        time.sleep(0.2)
    assert not _answers(port) and not (tmp_path / "pids" / "redis.pid").exists()


def test_what_cannot_be_started_is_named(tmp_path, monkeypatch):
    cluster = _script()
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server to be found
    args = argparse.Namespace(redis=f"redis://127.0.0.1:{_free_port()}/0", api_port=_free_port())
    with pytest.raises(SystemExit, match=r"cannot reach Redis at redis://127.0.0.1:\d+/0, and redis-server is not"):
        cluster._ensure_redis(tmp_path, args)
    remote = argparse.Namespace(redis="redis://10.255.255.1:6379/0", api_port=_free_port())
    with pytest.raises(SystemExit, match="cannot reach Redis at redis://10.255.255.1:6379/0"):
        cluster._ensure_redis(tmp_path, remote)
