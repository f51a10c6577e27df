"""The live dashboard in a real browser (issue 15 item 1): Debian's chromium, headless, driven by
Selenium through chromium-driver. The page is loaded from the real daemon's `Metrics.Listen`; a
real server is made to fail and the row of its pair must change by itself (the DOM is waited on,
never slept for). A screenshot of each state is kept under the artefacts directory the test
prints (IPVSWM_ARTEFACTS, else tmp/artefacts in the repository).

Addresses: real servers on 127.0.0.160-127.0.0.162 (127.0.0.165-166 for the cluster test); VS
192.0.2.60 (never contacted). The cluster test runs a real etcd (tests/support/etcd.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import director_pair
from tests.support.cluster import etcd
from tests.support.daemon import REPO
from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.etcd import Etcd
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

__all__ = ["etcd"]  # a fixture (tests/support/cluster.py)

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,700",
)


def artefacts() -> Path:
    path = Path(os.environ.get("IPVSWM_ARTEFACTS", REPO / "tmp" / "artefacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are needed (.ci/run installs them)")
        pytest.skip("chromium/chromium-driver not installed (apt-get install chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="ipvswm-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def rs(server: ThreadedRealServer) -> str:
    return f"{server.address}:{server.port}"


def row_state(driver: object, vs: str, host: str) -> dict[str, str] | None:
    """The data attributes of one pair's row, read from the live DOM."""
    script = (
        "const r = document.querySelector(`section[data-vs='${arguments[0]}'] "
        "tr[data-host='${arguments[1]}']`);"
        "return r ? {phase: r.dataset.phase, check: r.dataset.check, kernel: r.dataset.kernel,"
        " text: r.textContent} : null;"
    )
    result: dict[str, str] | None = driver.execute_script(script, vs, host)  # type: ignore[attr-defined]
    return result


def test_dashboard_shows_a_failing_server_by_itself(
    farm: ThreadedRealServers, tmp_path: Path, browser: object
) -> None:
    emu = Emulator(tmp_path / "emu")
    web1, web2 = farm.start("127.0.0.160"), farm.start("127.0.0.161")
    sorry = farm.start("127.0.0.162")
    port = free_port("127.0.0.1")
    daemon = DaemonProcess(
        tmp_path,
        "! www 192.0.2.60:80 /health sorry_server=sorry\n"
        "! api 192.0.2.61:80 /health\n"
        f"web1 {rs(web1)} www=100 api=10\nweb2 {rs(web2)} www=50\nsorry {rs(sorry)}\n",
        env=emu.env,
        options={"IPVSADM": emu.binary, "Metrics.Listen": f"127.0.0.1:{port}"},
    )
    daemon.start()
    out = artefacts()
    print(f"\ndashboard screenshots in {out}")
    try:
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/", timeout=10) as response:
            page = response.read().decode()
        assert "<script" in page and "src=" not in page and "http" not in page.split("<script")[1]
        browser.get(f"{base}/")  # type: ignore[attr-defined]

        def enabled(host: str, vs: str = "www") -> bool:
            state = row_state(browser, vs, host)
            return state is not None and state["phase"] == "ENABLED"

        wait_until(lambda: enabled("web1") and enabled("web2"), 30, "both rows ENABLED")
        # No Cluster.* configured: no cluster panel.
        assert browser.execute_script("return document.getElementById('cluster').hidden")  # type: ignore[attr-defined]
        browser.save_screenshot(str(out / "dashboard-healthy.png"))  # type: ignore[attr-defined]
        web1.set_mode("failing")
        wait_until(
            lambda: (
                (s := row_state(browser, "www", "web1")) is not None
                and s["phase"] == "AWAIT_PASS"
                and s["check"] == "fail"
                and s["kernel"] == "0"
            ),
            15,
            "web1's row to show a failed check, AWAIT_PASS and kernel weight 0",
            step=0.05,
        )
        state = row_state(browser, "www", "web1")
        assert state is not None and "status 500" in state["text"]
        other = row_state(browser, "www", "web2")
        assert other is not None and other["phase"] == "ENABLED"  # only the failed host changed
        browser.save_screenshot(str(out / "dashboard-web1-failing.png"))  # type: ignore[attr-defined]
        web2.set_mode("failing")
        wait_until(
            lambda: (
                browser.execute_script(  # type: ignore[attr-defined]
                    "return document.querySelector(\"section[data-vs='www']\").dataset.sorry"
                )
                == "on"
            ),
            15,
            "the sorry server shown in",
            step=0.05,
        )
        browser.save_screenshot(str(out / "dashboard-sorry.png"))  # type: ignore[attr-defined]
    finally:
        daemon.stop()


def cluster_panel(driver: object) -> dict[str, object]:
    """The cluster panel as the page shows it: members' states, the peer line, its text."""
    script = (
        "const c = document.getElementById('cluster');"
        "const m = {}; for (const e of c.querySelectorAll('.member'))"
        " m[e.dataset.node] = e.dataset.state;"
        "const p = document.getElementById('peer-change');"
        "return {hidden: c.hidden, store: c.dataset.store || '', members: m,"
        " peer: p ? p.textContent : '', text: c.textContent};"
    )
    result: dict[str, object] = driver.execute_script(script)  # type: ignore[attr-defined]
    return result


def test_dashboard_shows_the_cluster(
    farm: ThreadedRealServers, tmp_path: Path, browser: object, etcd: Etcd
) -> None:
    servers = {"web1": farm.start("127.0.0.165"), "web2": farm.start("127.0.0.166")}
    out = artefacts()
    with director_pair(tmp_path, servers, etcd) as (a, b):
        base = f"http://127.0.0.1:{a.metrics_port}"
        browser.get(f"{base}/")  # type: ignore[attr-defined]

        def members(want: dict[str, str]) -> bool:
            panel = cluster_panel(browser)
            return not panel["hidden"] and panel["store"] == "up" and panel["members"] == want

        wait_until(lambda: members({"A": "connected", "B": "connected"}), 30, "A and B connected")
        assert "this director A" in str(cluster_panel(browser)["text"])
        assert "no change from a peer yet" in str(cluster_panel(browser)["peer"])

        code, reply = b.ctl("set", "host", "web1", "off", "for", "reason", "deploy")
        assert code == 0, reply
        wait_until(
            lambda: "B: set host web1 off for reason deploy" in str(cluster_panel(browser)["peer"]),
            15,
            "the change made on B shown on A's dashboard",
            step=0.05,
        )
        browser.save_screenshot(str(out / "dashboard-cluster.png"))  # type: ignore[attr-defined]
        with urllib.request.urlopen(f"{base}/status", timeout=10) as response:
            cluster = json.load(response)["cluster"]
        assert (cluster["name"], cluster["node"], cluster["store_up"]) == ("pair1", "A", True)
        assert [(m["node"], m["present"], m["self"]) for m in cluster["members"]] == [
            ("A", True, True),
            ("B", True, False),
        ]
        change = cluster["last_peer_change"]
        assert change["node"] == "B" and change["what"] == "set host web1 off for reason deploy"

        b.daemon.stop()  # revokes its lease: A sees it leave at once
        wait_until(lambda: members({"A": "connected", "B": "disconnected"}), 30, "B disconnected")
        browser.save_screenshot(str(out / "dashboard-cluster-b-gone.png"))  # type: ignore[attr-defined]
        etcd.stop()  # the store itself goes: A says so, and keeps its last state
        wait_until(
            lambda: cluster_panel(browser)["store"] == "down", 30, "the store shown unreachable"
        )
        assert "unreachable" in str(cluster_panel(browser)["text"])
        assert cluster_panel(browser)["members"] == {"A": "unknown", "B": "unknown"}
        assert row_state(browser, "www", "web1") is not None
        browser.save_screenshot(str(out / "dashboard-cluster-store-down.png"))  # type: ignore[attr-defined]
