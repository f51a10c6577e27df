"""Director pairs, the rest of issue 12: `forget host` shared, hosts a reload adds, `local` marks
and two directors under one `Cluster.Node`. Real etcd, real daemons (tests/support/cluster.py)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.support.cluster import FULL
from tests.support.cluster import PREFIX
from tests.support.cluster import VIP
from tests.support.cluster import Director
from tests.support.cluster import director_pair
from tests.support.cluster import etcd
from tests.support.cluster import servers
from tests.support.cluster import stop_all
from tests.support.daemon import wait_until
from tests.support.etcd import Etcd
from tests.support.realservers import ThreadedRealServer

pytestmark = pytest.mark.integration

__all__ = ["etcd", "servers"]  # the fixtures (tests/support/cluster.py)


def body(servers: dict[str, ThreadedRealServer], *tags: str) -> str:
    """A config body with only the hosts `tags`."""
    return f"! www {VIP} /health\n" + "".join(
        f"{t} {servers[t].address}:{servers[t].port} www={FULL}\n" for t in tags
    )


def reload(d: Director, text: str) -> None:
    d.daemon.write_config(text)
    d.ok("config", "reload", "force")


def kept(d: Director) -> list[str]:
    data = d.ok("show", "hosts")
    items = data.get("kept", [])
    assert isinstance(items, list)
    return sorted(str(item["host"]) for item in items)


def test_forget_host_on_one_director_forgets_it_on_the_other(
    tmp_path: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd
) -> None:
    with director_pair(tmp_path, servers, etcd) as (a, b):
        a.ok("set", "host", "web2", "off", "for", "reason", "deploy")
        b.wait_weight("web2", 0)
        for d in (a, b):  # web2 leaves both configs: both keep its admin state
            reload(d, body(servers, "web1"))
            wait_until(lambda d=d: kept(d) == ["web2"], 10, f"{d.node}: web2 kept")
        offset = b.daemon.log_size()
        a.ok("forget", "host", "web2")
        b.daemon.wait_log("from director A: forget host web2", offset=offset)
        assert kept(b) == []
        assert kept(a) == []
        stored = etcd.keys(PREFIX)
        assert not any(k.startswith(f"{PREFIX}host/web2/") for k in stored), stored
        assert f"{PREFIX}forget/web2" in stored
        # web2 comes back on B: nothing of the forgotten deploy reason is restored.
        reload(b, body(servers, "web1", "web2"))
        b.wait_weight("web2", FULL)
        assert b.pair("web2")["host_reasons"] == []
        assert "from director A: set host web2" not in b.daemon.log_text(offset)


def test_without_the_store_forget_is_refused_and_local_changes_are_marked_in_show_hosts(
    tmp_path: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd
) -> None:
    with director_pair(tmp_path, servers, etcd) as (a, b):
        a.ok("set", "host", "web2", "off", "for", "reason", "deploy")
        a.ok("set", "host", "web1", "off", "for", "reason", "shared")
        reload(a, body(servers, "web1"))
        wait_until(lambda: kept(a) == ["web2"], 10, "A: web2 kept")
        etcd.kill()
        code, reply = a.ctl("forget", "host", "web2")
        assert code == 1, reply
        error = str(reply["data"]["error"])  # type: ignore[index]
        assert error.startswith("# cluster store unreachable ("), error
        assert kept(a) == ["web2"]
        a.ok("forget", "host", "web2", "local")
        assert kept(a) == []
        # `local` changes are marked where the host is shown: added, removed, overridden here.
        a.ok("set", "host", "web1", "off", "for", "reason", "disk", "local")
        a.ok("set", "host", "web1", "on", "reason", "shared", "local")
        a.ok("set", "host", "web1", "weight", "4", "local")
        [host] = a.ok("show", "hosts", "web1")["hosts"]  # type: ignore[misc]
        assert host["local"] == ["reason disk", "without reason shared", "override on vs www"]
        text = a.daemon.command("show hosts web1")
        assert (
            "web1 local (this director only, not shared):"
            " reason disk, without reason shared, override on vs www"
        ) in text, text
        [other] = b.ok("show", "hosts", "web1")["hosts"]  # type: ignore[misc]
        assert "local" not in other


def test_a_host_a_reload_adds_gets_the_shared_state_at_once(
    tmp_path: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd
) -> None:
    a = Director(tmp_path / "A", "A", servers, etcd.endpoints).start()
    b = Director(tmp_path / "B", "B", {"web1": servers["web1"]}, etcd.endpoints)
    try:
        b.start()
        a.wait_weight("web2", FULL)
        offset = b.daemon.log_size()
        a.ok("set", "host", "web2", "off", "for", "reason", "deploy")
        a.ok("set", "host", "web2", "weight", "3")
        b.daemon.wait_log("from director A: set host web2 weight 3", offset=offset)
        view = b.ok("show", "cluster")["cluster"]
        assert isinstance(view, dict)
        assert view["shared_keys"] == 2  # the reason and the override: known, not applied
        b.servers = servers
        reload(b, body(servers, "web1", "web2"))
        # Applied with the reload itself (no reconnect, no full read): before its first check.
        web2 = b.pair("web2")
        assert web2["host_reasons"] == ["deploy"]
        assert web2["override"] == 3
        b.daemon.wait_log("cluster store: set host web2 off for reason deploy (shared by A")
        b.daemon.wait_log(f"check {servers['web2'].address}:{servers['web2'].port}")
        b.wait_weight("web2", 0)
        assert b.pair("web2")["phase"] == "DISABLED"
    finally:
        stop_all(a, b)


def test_two_directors_with_one_cluster_node_are_detected_and_refuse_shared_changes(
    tmp_path: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd
) -> None:
    first = Director(tmp_path / "A1", "A", servers, etcd.endpoints).start()
    twin = Director(tmp_path / "A2", "A", servers, etcd.endpoints)

    def duplicate(d: Director) -> object:
        view = d.ok("show", "cluster")["cluster"]
        assert isinstance(view, dict)
        return view["duplicate"]

    try:
        twin.start()
        for d in (first, twin):
            wait_until(lambda d=d: duplicate(d) is not None, 20, f"{d.daemon.tmp.name}: duplicate")
            d.daemon.wait_log("cluster: another director also uses Cluster.Node=A (pid ")
            assert "DUPLICATE: another director also uses Cluster.Node=A" in d.daemon.command(
                "show cluster"
            )
            url = f"http://127.0.0.1:{d.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert "ipvswm_cluster_duplicate_node 1.0" in response.read().decode()
        assert f"pid {first.daemon.proc.pid if first.daemon.proc else 0} " in str(duplicate(twin))
        code, reply = twin.ctl("set", "host", "web1", "off", "for", "reason", "twin")
        assert code == 1, reply
        error = str(reply["data"]["error"])  # type: ignore[index]
        assert error.startswith("# another director also uses Cluster.Node=A ("), error
        assert not any("/reason/" in k for k in etcd.keys(PREFIX))
        twin.ok("set", "host", "web1", "off", "for", "reason", "twin", "local")
        twin.wait_weight("web1", 0)
        # The twin goes: the episode ends on the first one, shared commands work again.
        twin.daemon.stop()
        wait_until(lambda: duplicate(first) is None, 20, "the duplicate gone")
        first.daemon.wait_log("cluster: no other director uses Cluster.Node=A any more")
        assert first.daemon.log_text().count("another director also uses Cluster.Node=A (") == 1
        first.ok("set", "host", "web1", "off", "for", "reason", "deploy")
        assert f"{PREFIX}host/web1/reason/deploy" in etcd.keys(PREFIX)
    finally:
        stop_all(first, twin)
