"""First checks at once (issue 16 goal 2): a checker whose pairs carry no weight yet runs its
first check within a short window, the others keep their spread over the interval."""

from __future__ import annotations

import asyncio
import random
import time

from ipvswm.checks.checkset import FIRST_CHECKS_PER_SECOND
from ipvswm.checks.checkset import FIRST_WINDOW_MIN
from ipvswm.checks.checkset import CheckSet
from ipvswm.checks.checkset import first_window
from ipvswm.checks.probe import ProbeOutcome
from ipvswm.config.model import CheckTarget
from ipvswm.config.parser import parse_text
from ipvswm.engine.layout import unweighted_targets
from ipvswm.engine.mapping import service_key
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import Table
from tests.support.checks import Results
from tests.support.virtualtime import run_virtual

HOUR = 3600.0


class Half(random.Random):
    def random(self) -> float:
        return 0.5  # half the window: an hour's half for a checker that keeps its spread


async def instant(target: CheckTarget) -> ProbeOutcome:
    now = time.time()
    return ProbeOutcome(True, "", 200, now, now)


CONFIG = parse_text(
    "Check.Interval=3600\n"
    "! www 192.0.2.1:80 tcp://\n"
    "! api 192.0.2.2:80 tcp://\n"
    "web1 127.0.0.10:80 www=10 api=5\n"
    "web2 127.0.0.11:80 www=10\n"
    "web3 127.0.0.12:80 www=0\n"
).config
assert CONFIG is not None


def table(*weights: tuple[str, str, int]) -> Table:
    """A kernel table holding (VS tag, host address, weight) destinations."""
    services: dict[object, dict[DestKey, Destination]] = {}
    for vs_tag, address, weight in weights:
        vs = CONFIG.service(vs_tag)
        assert vs is not None
        dest = DestKey(address, 80)
        services.setdefault(service_key(vs), {})[dest] = Destination(dest, weight=weight)
    return Table(
        {key: ServiceEntry(Service(key), dests) for key, dests in services.items()}  # type: ignore[arg-type]
    )


def by_address(targets: set[CheckTarget]) -> list[str]:
    return sorted(t.address for t in targets)


def test_unweighted_targets_are_those_without_a_pair_in_service() -> None:
    every = ["127.0.0.10", "127.0.0.11", "127.0.0.12"]
    assert by_address(unweighted_targets(CONFIG, Table())) == every  # a fresh start
    # web1's check serves www and api: one pair with weight is enough; a pair at 0 counts as none.
    kernel = table(("www", "127.0.0.10", 0), ("api", "127.0.0.10", 5), ("www", "127.0.0.11", 0))
    assert by_address(unweighted_targets(CONFIG, kernel)) == ["127.0.0.11", "127.0.0.12"]
    fresh = {t for t in CONFIG.check_targets() if t.address == "127.0.0.12"}
    assert by_address(unweighted_targets(CONFIG, kernel, fresh)) == ["127.0.0.12"]


def test_the_window_is_short_and_grows_with_the_checks() -> None:
    assert first_window(1) == FIRST_WINDOW_MIN
    assert first_window(int(FIRST_CHECKS_PER_SECOND * 3)) == 3.0


def test_unweighted_checkers_check_at_once_the_others_keep_their_spread() -> None:
    async def main() -> None:
        sink = Results()
        checks = CheckSet(sink, rng=Half(), probe=instant)
        targets = CONFIG.check_targets()
        urgent = {t for t in targets if t.address != "127.0.0.10"}
        started = asyncio.get_running_loop().time()
        try:
            checks.update(targets, urgent)
            results = await sink.wait(2)
            # Virtual time: both at half the short window, not half the hour.
            assert asyncio.get_running_loop().time() - started == FIRST_WINDOW_MIN / 2
            assert {r.target for r in results} == urgent
            await asyncio.sleep(HOUR / 2 - 1)
            assert len(sink.items) == 2  # web1's first check is half an hour away
        finally:
            await checks.close()

    run_virtual(main())


def test_a_later_update_starts_only_the_new_urgent_checkers_at_once() -> None:
    async def main() -> None:
        sink = Results()
        checks = CheckSet(sink, rng=Half(), probe=instant)
        targets = CONFIG.check_targets()
        first = {t for t in targets if t.address == "127.0.0.10"}
        try:
            checks.update(first)  # spread over the hour
            checks.update(targets, targets)  # web1 is not new: its checker is left alone
            results = await sink.wait(2)
            assert {r.target.address for r in results} == {"127.0.0.11", "127.0.0.12"}
            await asyncio.sleep(HOUR / 2 - 1)
            assert len(sink.items) == 2
        finally:
            await checks.close()

    run_virtual(main())
