"""Benchmark: how soon an edited config reaches the kernel (issue 16 goal 1).

The real `ipvswm run` on the ipvsadm emulator, `--vs` VSs x `--hosts` hosts (TCP checks against
real servers on 127.0.0.200, one port per host), Config.CheckPeriod at its default (3 s). Each trial
changes one weight, alternately by an atomic rename (`mv new conf`: timed from the rename) and by an
in-place write (`cat new > conf`: timed from the writer's close), and waits for the `ipvsadm -R`
batch that sets it (emulator invocation log: the start of that call).

Prints `reload_rename_p50|max`, `reload_in_place_p50|max` (ms), `pairs`, `trials`, `load_1min`.
For the figure before issue 16, run the same script with `PYTHONPATH=/work/main/src`.

Usage: python bench/reload_latency.py [--trials 20] [--vs 1] [--hosts 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.daemon import wait_until  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402
from tests.support.realservers import ThreadedRealServers  # noqa: E402

from detect import InvocationLog  # noqa: E402

FULL = 10


def vip(i: int) -> str:
    return f"192.0.2.{10 + i // 1000}:{1000 + i % 1000}"


class Site:
    def __init__(self, tmp: Path, farm: ThreadedRealServers, args: argparse.Namespace) -> None:
        self.rips = [
            f"{s.address}:{s.port}" for s in (farm.start("127.0.0.200") for _ in range(args.hosts))
        ]
        self.vss = args.vs
        self.emu = Emulator(tmp / "emu")
        if self.emu.real:
            raise SystemExit("needs the emulator (unset IPVSWM_TEST_IPVSADM)")
        self.log = InvocationLog(self.emu.log)
        options = {
            "IPVSADM": self.emu.binary,
            "Log.Level": "4",
            "Check.Interval": "5",
            "Ramping.TriggerTime": "86400",
            "Config.CheckPeriod": "3",
            "Config.MaxRemovedShare": "1",
        }
        (tmp / "daemon").mkdir()
        self.daemon = DaemonProcess(
            tmp / "daemon", self.body(FULL), env=self.emu.env, options=options
        )

    def body(self, first: int) -> str:
        lines = [f"! v{i} {vip(i)} tcp://" for i in range(self.vss)]
        for h, rip in enumerate(self.rips):
            weights = " ".join(
                f"v{i}={first if (h, i) == (0, 0) else FULL}" for i in range(self.vss)
            )
            lines.append(f"h{h} {rip} {weights}")
        return "\n".join(lines) + "\n"

    def text(self, first: int) -> str:
        head = "".join(f"{k}={v}\n" for k, v in self.daemon.options.items())
        return head + self.body(first)

    def applied(self, weight: int, after: float) -> float | None:
        return self.log.weight_set(vip(0), self.rips[0], weight, after)


def trial(site: Site, weight: int, rename: bool) -> float:
    text = site.text(weight)
    if rename:
        new = site.daemon.config.with_suffix(".new")
        new.write_text(text, encoding="utf-8")
        start = time.time()
        os.replace(new, site.daemon.config)
    else:
        with open(site.daemon.config, "w", encoding="utf-8") as writer:
            writer.write(text)
        start = time.time()
    found: list[float] = []

    def done() -> bool:
        when = site.applied(weight, start - 1.0)
        if when is not None:
            found.append(when)
        return bool(found)

    wait_until(done, 60.0, f"weight {weight} applied", step=0.005)
    return max(found[0] - start, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--vs", type=int, default=1)
    parser.add_argument("--hosts", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ThreadedRealServers() as farm:
        site = Site(Path(tmp), farm, args)
        site.daemon.start(timeout=120)
        try:
            wait_until(lambda: site.applied(FULL, 0) is not None, 120, "the first weights")
            times: dict[bool, list[float]] = {True: [], False: []}
            for n in range(args.trials):
                weight = 1 + n % 9
                times[n % 2 == 0].append(trial(site, weight, n % 2 == 0))
                time.sleep(0.3)  # the next edit is a separate one, not coalesced with this
        finally:
            site.daemon.stop()
    for name, rename in (("rename", True), ("in_place", False)):
        values = times[rename]
        print(f"reload_{name}_p50 = {statistics.median(values) * 1000:.0f} ms")
        print(f"reload_{name}_max = {max(values) * 1000:.0f} ms")
    print(f"pairs = {args.vs * args.hosts}")
    print(f"trials = {args.trials}")
    print(f"load_1min = {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
