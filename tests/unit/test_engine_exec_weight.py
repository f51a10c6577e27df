"""A check that reports a weight percentage (exec: with dynamic=true) scales the pair's weight."""

from __future__ import annotations

from ipvswm.engine.rules import scaled_weight
from ipvswm.engine.state import Phase
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import SetOverride
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import basic
from tests.unit.test_engine_fixtures import healthy


def report(d: Driver, host: str, pct: int | None, passed: bool = True) -> None:
    status = CheckStatus.PASS if passed else CheckStatus.FAIL
    d.feed(
        CheckResult(
            target=d.target("web", host),
            passed=passed,
            status=status,
            started=d.now - 0.1,
            ended=d.now,
            cause="" if passed else "exit 1",
            weight_pct=pct,
        )
    )


def test_percentage_scales_the_target_and_full_weight_comes_back() -> None:
    d = healthy(basic())
    assert d.weight("web", "web1") == 100
    report(d.at(T0 + 5), "web1", 50)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (50, Phase.ENABLED)
    report(d.at(T0 + 6), "web2", 33)  # 50 x 33% = 16.5: rounded up
    assert d.weight("web", "web2") == 17
    report(d.at(T0 + 7), "web1", None)  # exit 0: the full weight again
    assert d.weight("web", "web1") == 100


def test_percentage_composes_with_override_and_zero_keeps_it_in_at_zero() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetOverride("web1", 40))
    report(d.at(T0 + 6), "web1", 150)  # over 100% (exit 152) raises the weight, keepalived's way
    assert d.weight("web", "web1") == 60
    report(d.at(T0 + 7), "web1", 0)  # exit 2: passing, weight 0
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, Phase.ENABLED)
    report(d.at(T0 + 8), "web1", 1)  # at least 1 while the percentage is above 0
    assert d.weight("web", "web1") == 1


def test_a_failure_still_takes_the_pair_out() -> None:
    d = healthy(basic())
    report(d.at(T0 + 5), "web1", 50)
    report(d.at(T0 + 6), "web1", None, passed=False)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, Phase.AWAIT_PASS)


def test_scaled_weight() -> None:
    assert [scaled_weight(100, p) for p in (None, 0, 1, 50, 253)] == [100, 0, 1, 50, 253]
    assert scaled_weight(0, 50) == 0
    assert scaled_weight(65535, 253) == 65535
