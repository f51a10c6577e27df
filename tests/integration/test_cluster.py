"""Director pairs through a real etcd (issue 12): two (or three) real daemons share admin state.

The directors, the etcd and the servers come from tests/support/cluster.py. Real servers on
127.0.0.210-212. Every wait is on readiness (a table weight, a log line, a JSON field).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.support.cluster import FULL
from tests.support.cluster import PREFIX
from tests.support.cluster import Director
from tests.support.cluster import director_pair
from tests.support.cluster import etcd
from tests.support.cluster import servers
from tests.support.cluster import stop_all
from tests.support.daemon import ConsoleSession
from tests.support.daemon import free_port
from tests.support.daemon import run_cli
from tests.support.daemon import wait_until
from tests.support.etcd import Etcd
from tests.support.etcd import make_tls
from tests.support.realservers import ThreadedRealServer
from tests.support.smtp import Inbox

pytestmark = pytest.mark.integration

__all__ = ["etcd", "servers"]  # the fixtures (tests/support/cluster.py)


@pytest.fixture
def smtpd() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port("127.0.0.1"))
    controller.start()
    yield inbox, controller.port
    controller.stop()


def test_off_on_override_and_ramp_propagate(
    tmp_path: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd
) -> None:
    with director_pair(tmp_path, servers, etcd) as (a, b):
        # A shared command reaches the store before the engine: an unknown name is refused
        # first, in the engine's words, and nothing of it is written.
        before = etcd.keys(PREFIX)
        code, reply = a.ctl("set", "host", "nosuch", "off")
        assert (code, reply["lines"]) == (1, ["# no such host 'nosuch'"])
        code, reply = a.ctl("set", "host", "web1", "off", "for", "vs", "nosuch")
        assert (code, reply["lines"]) == (1, ["# no such vs 'nosuch'"])
        assert etcd.keys(PREFIX) == before
        a.ok("set", "host", "web1", "off", "for", "reason", "deploy")
        b.wait_weight("web1", 0)
        b.daemon.wait_log("from director A: set host web1 off for reason deploy")
        assert b.pair("web1")["host_reasons"] == ["deploy"]
        # One key per reason, under the cluster's prefix.
        assert f"{PREFIX}host/web1/reason/deploy" in etcd.keys(PREFIX)

        # `on` on B: A must wait for its own fresh pass. The server fails meanwhile, so A keeps
        # web1 at 0 after it learnt the enable, and gives weight only once its own check passes.
        servers["web1"].set_mode("status:500")
        a.daemon.wait_log("check ", timeout=15)
        offset = a.daemon.log_size()
        b.ok("set", "host", "web1", "on", "reason", "deploy")
        a.daemon.wait_log("from director B: set host web1 on reason deploy", offset=offset)
        assert a.pair("web1")["phase"] == "AWAIT_PASS"
        assert a.weight("web1") == 0
        servers["web1"].set_mode("healthy")
        a.wait_weight("web1", FULL)
        b.wait_weight("web1", FULL)

        # Overrides, both ways.
        a.ok("set", "host", "web2", "weight", "3")
        b.wait_weight("web2", 3)
        b.ok("set", "host", "web2", "weight", "default")
        a.wait_weight("web2", FULL)

        # An explicit ramp: B ramps web2 up over the duration given on A.
        a.ok("set", "host", "web2", "off", "for", "vs", "www")
        b.wait_weight("web2", 0)
        offset = b.daemon.log_size()
        a.ok("set", "host", "web2", "on", "for", "vs", "www", "in", "3")
        b.daemon.wait_log(
            "from director A: set host web2 on for vs www reason default in 3", offset=offset
        )
        b.daemon.wait_log("admin on in 3s", offset=offset)
        b.wait_weight("web2", FULL)

        # show cluster and /metrics
        view = b.ok("show", "cluster")["cluster"]
        assert isinstance(view, dict)
        assert view["store"] == "up"
        members = {m["node"]: m["present"] for m in view["members"]}  # type: ignore[index,union-attr]
        assert members == {"A": True, "B": True}
        url = f"http://127.0.0.1:{b.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        assert "ipvswm_cluster_store_up 1.0" in text
        assert "ipvswm_cluster_propagation_lag_seconds" in text


def test_concurrent_different_reasons_both_win(
    tmp_path: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd
) -> None:
    with director_pair(tmp_path, servers, etcd) as (a, b):
        codes: dict[str, int] = {}
        barrier = threading.Barrier(2)

        def off(d: Director, reason: str) -> None:
            barrier.wait()
            codes[reason] = d.ctl("set", "host", "web1", "off", "for", "reason", reason)[0]

        threads = [
            threading.Thread(target=off, args=(a, "x")),
            threading.Thread(target=off, args=(b, "y")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == {"x": 0, "y": 0}
        for d in (a, b):
            wait_until(
                lambda d=d: d.pair("web1")["host_reasons"] == ["x", "y"], 10, f"{d.node}: x and y"
            )
            d.wait_weight("web1", 0)


def test_store_lost_checks_go_on_admin_refused_local_works_then_converge(
    tmp_path: Path,
    servers: dict[str, ThreadedRealServer],
    etcd: Etcd,
    smtpd: tuple[Inbox, int],
) -> None:
    inbox, port = smtpd
    mail = {"Email.SMTP": f"127.0.0.1:{port}", "Email.Headers.To": "ops@example.org"}
    with director_pair(tmp_path, servers, etcd, **mail) as (a, b):
        a.ok("set", "host", "web1", "off", "for", "reason", "before")
        b.wait_weight("web1", 0)
        etcd.kill()
        # Checks still drive weights on both.
        servers["web2"].set_mode("refusing")
        a.wait_weight("web2", 0)
        b.wait_weight("web2", 0)
        servers["web2"].set_mode("healthy")
        a.wait_weight("web2", FULL)
        b.wait_weight("web2", FULL)
        # Admin commands are refused with exit 1, nothing changed.
        code, reply = a.ctl("set", "host", "web2", "off", "for", "reason", "refused")
        assert code == 1, reply
        error = str(reply["data"]["error"])  # type: ignore[index]
        assert error.startswith("# cluster store unreachable ("), error
        assert ": nothing changed" in error
        assert a.pair("web2")["host_reasons"] == []
        a.daemon.wait_log("cluster store unreachable (")
        assert a.daemon.log_text().count("cluster store unreachable (") >= 1
        # `local` applies to this director only and is shown as local.
        a.ok("set", "host", "web2", "weight", "4", "local")
        a.wait_weight("web2", 4)
        view = a.ok("show", "cluster")["cluster"]
        assert isinstance(view, dict)
        assert view["local"] == ["host/web2/vs/www/override"]
        assert str(view["store"]).startswith("unreachable")
        # Restarted with the same data dir: both converge; the acknowledged change is still there.
        offset = b.daemon.log_size()
        etcd.start()
        b.daemon.wait_log("cluster store reachable again", timeout=20, offset=offset)
        a.daemon.wait_log("cluster store reachable again", timeout=20)
        a.ok("set", "host", "web1", "on", "reason", "before")
        b.wait_weight("web1", FULL)
        a.wait_weight("web1", FULL)
        assert b.weight("web2") == FULL  # the local override stayed on A
        assert a.weight("web2") == 4
        # Losing and regaining were logged once each (for this outage).
        log = b.daemon.log_text()
        assert log.count("cluster store reachable again") == 1
        # ... and mailed (Email set): one "unreachable" and one "reachable again" per director.
        lost, back = "cluster 'pair1' store unreachable", "cluster 'pair1' store reachable again"
        wait_until(lambda: inbox.subjects().count(back) == 2, 10, "the 'reachable again' mails")
        assert inbox.subjects().count(lost) == 2, inbox.subjects()


def test_a_director_down_catches_up_before_its_first_kernel_change(
    tmp_path: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd
) -> None:
    with director_pair(tmp_path, servers, etcd) as (a, b):
        b.daemon.stop()
        lines = [f"set host web1 off for reason r{i}" for i in range(98)]
        lines += ["set host web2 weight 7", "set host web2 off for vs www for reason deploy"]
        with ConsoleSession.unix(a.daemon.sock) as session:
            for line in lines:
                reply = session.send(line)
                assert reply.startswith("ok:"), (line, reply)
        mark = len(b.emu.invocations())
        b.start()
        reasons = b.pair("web1")["host_reasons"]
        assert isinstance(reasons, list)
        assert sorted(reasons) == sorted(f"r{i}" for i in range(98))
        web2 = b.pair("web2")
        assert web2["reasons"] == ["deploy"]
        assert web2["override"] == 7
        changing = [i for i in b.emu.invocations()[mark:] if i.changing]
        assert changing, "B never changed its table"
        first = "\n".join(changing[0].batch_lines())
        w1, w2 = (f"{servers[t].address}:{servers[t].port}" for t in ("web1", "web2"))
        # The very first change already takes both hosts out: all 100 were known before it.
        assert f"-r {w1} -m -w 0" in first and f"-r {w2} -m -w 0" in first, first
        for inv in changing:
            text = "\n".join(inv.batch_lines())
            assert f"-w {FULL}" not in text and "-w 7" not in text, text
        b.wait_weight("web1", 0)
        b.wait_weight("web2", 0)


def test_three_member_etcd_with_one_member_killed_refuses_nothing(
    tmp_path: Path, servers: dict[str, ThreadedRealServer]
) -> None:
    (tmp_path / "etcd").mkdir()
    etcd = Etcd(tmp_path / "etcd", size=3).start()
    directors: list[Director] = []
    try:
        directors = [
            Director(tmp_path / n, n, servers, etcd.endpoints).start() for n in ("A", "B", "C")
        ]
        for d in directors:
            d.wait_weight("web1", FULL)
        etcd.kill(0)  # the first endpoint: the one every director talks to
        a, b, c = directors
        a.ok("set", "host", "web1", "off", "for", "reason", "m0-down")
        b.wait_weight("web1", 0)
        c.wait_weight("web1", 0)
        b.ok("set", "host", "web2", "weight", "2")
        a.wait_weight("web2", 2)
        c.ok("set", "host", "web1", "on", "reason", "m0-down")
        a.wait_weight("web1", FULL)
        b.wait_weight("web1", FULL)
    finally:
        stop_all(*directors)
        etcd.stop()


def test_tls_and_auth_and_a_wrong_password_is_a_start_up_error(
    tmp_path: Path, servers: dict[str, ThreadedRealServer]
) -> None:
    (tmp_path / "etcd").mkdir()
    tls = make_tls(tmp_path)
    etcd = Etcd(tmp_path / "etcd", tls=tls).start()
    try:
        etcd.enable_auth("director", "s3cret")
        (tmp_path / "pw").write_text("s3cret\n")
        (tmp_path / "bad-pw").write_text("wrong\n")
        extra = {
            "Cluster.Etcd.CACert": str(tls.ca),
            "Cluster.Etcd.Cert": str(tls.client_cert),
            "Cluster.Etcd.Key": str(tls.client_key),
            "Cluster.Etcd.User": "director",
            "Cluster.Etcd.PasswordFile": str(tmp_path / "pw"),
        }
        with director_pair(tmp_path, servers, etcd, **extra) as (a, b):
            a.ok("set", "host", "web1", "off", "for", "reason", "tls")
            b.wait_weight("web1", 0)
            b.daemon.wait_log("from director A: set host web1 off for reason tls")

        bad = Director(
            tmp_path / "C",
            "C",
            servers,
            etcd.endpoints,
            {**extra, "Cluster.Etcd.PasswordFile": str(tmp_path / "bad-pw")},
        )
        done = run_cli(bad.daemon, "run", "--foreground", "-c", str(bad.daemon.config))
        assert done.returncode == 1, done
        text = bad.daemon.log_text()
        assert "cannot use the cluster store" in text
        assert "authentication" in text
        assert bad.emu.changing_invocations() == []
    finally:
        etcd.stop()


def test_check_config_validates_cluster_keys(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("Cluster.Etcd=127.0.0.1:2379\nCluster.Etcd.User=x\nCluster.Node=a/b\n")
    done = subprocess.run(
        [sys.executable, "-m", "ipvswm.cli", "check-config", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Cluster.Name is required with Cluster.Etcd" in done.stdout + done.stderr
    assert "Cluster.Etcd.User and Cluster.Etcd.PasswordFile go together" in (
        done.stdout + done.stderr
    )
    assert "Cluster.Node: bad value" in done.stdout + done.stderr
