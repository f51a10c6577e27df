"""Director pairs through etcd (issue 12): propagation, catch-up and the watch's idle CPU.

- A→B propagation: two real daemons (`ipvswm run`) on the ipvsadm emulator sharing a real etcd
  (started here on free loopback ports, temp data dir). `--commands` commands (default 200) are
  sent one at a time on A's Unix socket; each is timed from just before it was sent to the
  timestamp of B's `from director A: …` log line (same machine, same clock).
- Catch-up: `--keys` shared keys (default 10,000 reasons over 100 hosts) written straight to
  etcd, then one cluster store adapter, in-process, reads them all at one revision, diffs them
  against an empty belief and saves them to its local DB: what a director does on reconnect.
- Watch CPU: that adapter with its watch and presence keep-alive running, idle for `--idle`
  seconds: the CPU this process used meanwhile (the extra CPU of the watch; should be ~0).

Needs etcd (`apt-get install -y etcd-server`). Real servers on 127.0.0.230-231.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.daemon import ConsoleSession  # noqa: E402
from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402
from tests.support.etcd import Etcd  # noqa: E402
from tests.support.realservers import ThreadedRealServers  # noqa: E402

from ipvswm.cluster.adapter import ClusterStore  # noqa: E402
from ipvswm.cluster.adapter import SharedUpdate  # noqa: E402
from ipvswm.cluster.etcd import EtcdClient  # noqa: E402
from ipvswm.cluster.etcd import Put  # noqa: E402
from ipvswm.cluster.memory import Memory  # noqa: E402
from ipvswm.config.model import GlobalOptions  # noqa: E402

VIP = "192.0.2.70:80"
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\|\d+\|from director A: (.*)$", re.M)


def director(tmp: Path, node: str, body: str, endpoints: str) -> tuple[DaemonProcess, Emulator]:
    tmp.mkdir()
    emu = Emulator(tmp / "emu")
    daemon = DaemonProcess(
        tmp,
        body,
        env=emu.env,
        options={
            "IPVSADM": emu.binary,
            "Log.Level": "1",
            "Cluster.Etcd": endpoints,
            "Cluster.Name": "bench",
            "Cluster.Node": node,
            "Check.Interval": "1",
            # The default period: with the test harness's 1 s, B's owner would spend most of its
            # time in table reads of the (Python) emulator and the figure would measure those.
            "IPVS.ResyncPeriod": "10",
        },
    )
    return daemon, emu


def propagation(tmp: Path, etcd: Etcd, commands: int) -> tuple[list[float], list[float]]:
    """Seconds from sending each command on A to B's log line for it: all of them, and those
    during which B started no kernel call (its owner waits for each: a resync's table read, the
    previous change's `ipvsadm -R`; here each is a Python emulator process)."""
    with ThreadedRealServers() as farm:
        servers = [farm.start(f"127.0.0.{230 + i}") for i in range(2)]
        body = f"! www {VIP} /health\n" + "".join(
            f"web{i} {s.address}:{s.port} www=10\n" for i, s in enumerate(servers)
        )
        a, _ = director(tmp / "A", "A", body, etcd.endpoints)
        b, b_emu = director(tmp / "B", "B", body, etcd.endpoints)
        try:
            a.start()
            b.start()
            sent: dict[str, float] = {}
            with ConsoleSession.unix(a.sock) as session:
                for i in range(commands):
                    # Alternate: a reason added, then removed, on web0 (web1 keeps the VS up).
                    reason = f"r{i // 2}"
                    word = "off for reason" if i % 2 == 0 else "on reason"
                    line = f"set host web0 {word} {reason}"
                    expected = (
                        f"set host web0 off for reason {reason}"
                        if i % 2 == 0
                        else f"set host web0 on reason {reason}"
                    )
                    offset = b.log_size()
                    sent[expected] = time.time()
                    reply = session.send(line)
                    assert reply.startswith("ok:"), reply
                    b.wait_log(f"from director A: {expected}", timeout=10, offset=offset)
            seen: dict[str, float] = {}
            for stamp, what in LINE.findall(b.log_text()):
                when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
                seen.setdefault(what, when.timestamp())
            calls = [inv.time for inv in b_emu.invocations()]
            lags = [seen[k] - t for k, t in sent.items()]
            # A call that began up to 0.5 s before the send may still run (its start is logged
            # after the emulator's own interpreter start-up).
            idle = [
                seen[k] - t
                for k, t in sent.items()
                if not any(t - 0.5 <= c <= seen[k] for c in calls)
            ]
            return lags, idle
        finally:
            for d in (a, b):
                if d.proc is not None:
                    d.stop()


async def catch_up_and_idle(tmp: Path, etcd: Etcd, keys: int, idle: float) -> tuple[float, float]:
    """(seconds to catch up `keys` shared keys, CPU seconds per second of an idle watch)."""
    client = EtcdClient(etcd.endpoints.split(","))
    prefix = "/ipvswm/catchup/"
    value = '{"at": 1.0, "node": "A"}'
    ops = [Put(f"{prefix}host/h{i // 100}/reason/r{i % 100}", value) for i in range(keys)]
    for start in range(0, len(ops), 100):  # etcd allows 128 operations per transaction
        await client.txn(ops[start : start + 100])
    await client.close()
    options = GlobalOptions(
        cluster_etcd=etcd.endpoints, cluster_name="catchup", cluster_node="bench"
    )
    updates: list[SharedUpdate] = []
    store = ClusterStore(options, Memory(str(tmp / "catchup.db")), updates.append)
    begun = time.perf_counter()
    update = await store.start()
    assert update is not None and len(update.puts) == keys, "catch-up read failed"
    store.applied(update)
    store.persist()
    catch_up = time.perf_counter() - begun
    store.run()
    await asyncio.sleep(1.0)  # the watch and the lease are set up
    cpu0 = time.process_time()
    await asyncio.sleep(idle)
    cpu = (time.process_time() - cpu0) / idle
    await store.close()
    return catch_up, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "etcd").mkdir()
        etcd = Etcd(tmp / "etcd").start()
        try:
            all_lags, idle_lags = propagation(tmp, etcd, args.commands)
            lags, idle = sorted(all_lags), sorted(idle_lags)
            catch_up, cpu = asyncio.run(catch_up_and_idle(tmp, etcd, args.keys, args.idle))
        finally:
            etcd.stop()
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    print(f"propagation_commands = {len(lags)}")
    print(f"propagation_p50 = {statistics.median(lags) * 1000:.1f} ms")
    print(f"propagation_p99 = {p99 * 1000:.1f} ms")
    print(f"propagation_max = {lags[-1] * 1000:.1f} ms")
    print(f"propagation_commands_without_kernel_call_on_b = {len(idle)}")
    if idle:
        p99_idle = idle[min(len(idle) - 1, int(len(idle) * 0.99))]
        print(f"propagation_without_kernel_call_on_b_p99 = {p99_idle * 1000:.1f} ms")
        print(f"propagation_without_kernel_call_on_b_max = {idle[-1] * 1000:.1f} ms")
    print(f"load_average_1min = {os.getloadavg()[0]:.1f}")
    print(f"catch_up_{args.keys}_keys = {catch_up * 1000:.0f} ms")
    print(f"watch_idle_cpu = {cpu * 1000:.2f} ms/s")


if __name__ == "__main__":
    main()
