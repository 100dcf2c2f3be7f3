"""The URL forms of VOTING_REDIS_URL (voting.live.connection.parse) and their refusals."""

from __future__ import annotations

import pytest

from voting.live.connection import connect, is_cluster, parse
from voting.settings import Settings, SettingsError


def test_one_server_urls_are_kept_as_they_are() -> None:
    for url in ("redis://h:6379/0", "rediss://u:p@h:6380/2", "unix:///run/redis.sock"):
        target = parse(url)
        assert (target.kind, target.url) == ("single", url)


def test_cluster_url_lists_its_nodes_and_credentials() -> None:
    target = parse("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002/")
    assert target.kind == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002))
    assert (target.username, target.password, target.ssl) == ("app", "s@cret", False)
    assert "s@cret" not in repr(target)
    assert parse("rediss+cluster://h1").nodes == (("h1", 6379),)
    assert parse("rediss+cluster://h1").ssl


def test_sentinel_url_names_the_service_and_database() -> None:
    target = parse("redis+sentinel://:pw@s1:26379,s2:26380/mymaster?db=3&sentinel_password=spw")
    assert target.kind == "sentinel"
    assert target.nodes == (("s1", 26379), ("s2", 26380))
    assert (target.service, target.db, target.password) == ("mymaster", 3, "pw")
    assert target.sentinel_password == "spw"
    assert parse("redis+sentinel://s1/other/2").db == 2
    assert parse("redis+sentinel://s1/other").nodes == (("s1", 26379),)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:6379", "must be a URL"),
        ("http://h:1", "unknown scheme"),
        ("redis+shard://h:1", "unknown scheme"),
        ("redis+cluster://h:1/3", "only database 0"),
        ("redis+cluster://h:1?db=1", "only database 0"),
        ("redis+cluster://h:1?read_from_replicas=1", "unknown option"),
        ("redis+cluster://h:notaport", "not host:port"),
        ("redis+cluster://h:70000", "not host:port"),
        ("redis+cluster://,", "no host:port"),
        ("redis+sentinel://s1:26379", "needs the service name"),
        ("redis+sentinel://s1:26379/m?db=x", "not a number"),
        ("redis+sentinel://s1:26379/m?timeout=1", "unknown option"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse(url)


def test_settings_refuse_a_bad_redis_url_by_name() -> None:
    with pytest.raises(SettingsError, match="VOTING_REDIS_URL"):
        Settings.from_env({"VOTING_REDIS_URL": "redis+sentinel://s1:26379"})
    ok = Settings.from_env({"VOTING_REDIS_URL": "redis+cluster://h1:7000,h2:7001"})
    assert ok.redis.url == "redis+cluster://h1:7000,h2:7001"


async def test_each_form_builds_its_client_without_connecting() -> None:
    cluster = connect("redis+cluster://127.0.0.1:1", 0.1)
    single = connect("redis://127.0.0.1:1/0", 0.1)
    sentinel = connect("redis+sentinel://127.0.0.1:1/mymaster", 0.1)
    assert is_cluster(cluster) and not is_cluster(single) and not is_cluster(sentinel)
    assert type(sentinel.connection_pool).__name__ == "BlockingSentinelPool"
    await single.aclose()
    await sentinel.aclose()
