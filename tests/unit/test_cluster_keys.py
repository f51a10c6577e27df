"""The shared state's keys: admin events to transactions and back, and catch-up diffs (pure)."""

from __future__ import annotations

from ipvswm.cluster.etcd import Delete
from ipvswm.cluster.etcd import Op
from ipvswm.cluster.etcd import Put
from ipvswm.cluster.etcd import prefix_end
from ipvswm.cluster.etcd import unb64
from ipvswm.cluster.keys import describe_event
from ipvswm.cluster.keys import diff
from ipvswm.cluster.keys import forget_ops
from ipvswm.cluster.keys import ops_for
from ipvswm.config.options import cluster_problems
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn


def vss_of(host: str) -> tuple[str, ...]:
    return ("www", "api")


def apply(shared: dict[str, str], ops: list[Op]) -> dict[str, str]:
    """What etcd does with a transaction, on a dict."""
    out = dict(shared)
    for op in ops:
        if isinstance(op, Put):
            out[op.key] = op.value
        elif op.prefix:
            out = {k: v for k, v in out.items() if not k.startswith(op.key)}
        else:
            out.pop(op.key, None)
    return out


def test_one_key_per_reason_so_concurrent_reasons_both_win() -> None:
    a = ops_for(SetHostOff("web1", frozenset({"x"})), "A", 1.0, vss_of)
    b = ops_for(SetHostOff("web1", frozenset({"y"})), "B", 1.0, vss_of)
    shared = apply(apply({}, a), b)
    assert set(shared) == {"host/web1/reason/x", "host/web1/reason/y"}
    changes = diff({}, shared)
    assert [c.event for c in changes] == [SetHostOff("web1", frozenset({"x", "y"}))]


def test_round_trip_of_every_admin_event() -> None:
    events = [
        SetHostOff("web1", frozenset({"deploy", "a/b c"})),
        SetPairsOff("web1", ("www",), frozenset({"db"})),
        SetOverride("web1", 3, ("www",)),
    ]
    shared: dict[str, str] = {}
    for event in events:
        before = shared
        shared = apply(shared, ops_for(event, "A", 5.0, vss_of))
        [change] = diff(before, shared)
        assert change.event == event
        assert change.node == "A" and change.at == 5.0
    before = shared
    shared = apply(shared, ops_for(SetHostOn("web1", None, 20.0), "B", 6.0, vss_of))
    [change] = diff(before, shared)
    # `*` is shared as the reasons it removed: a local-only reason on another director stays.
    assert change.event == SetHostOn("web1", frozenset({"deploy", "a/b c"}), 20.0)
    assert change.node == "B"
    before = shared
    shared = apply(shared, ops_for(SetOverride("web1", None, ("www",)), "B", 7.0, vss_of))
    assert [c.event for c in diff(before, shared)] == [SetOverride("web1", None, ("www",))]


def test_override_without_vs_list_is_one_key_per_pair() -> None:
    ops = ops_for(SetOverride("web1", 7), "A", 1.0, vss_of)
    assert [op.key for op in ops] == ["host/web1/vs/www/override", "host/web1/vs/api/override"]


def test_enable_carries_the_explicit_ramp_and_no_ramp_clears_it() -> None:
    shared = apply({}, ops_for(SetPairsOff("web1", ("www",), frozenset({"r"})), "A", 1, vss_of))
    on = apply(
        shared, ops_for(SetPairsOn("web1", ("www",), frozenset({"r"}), 30.0), "A", 2, vss_of)
    )
    assert [c.event for c in diff(shared, on)] == [
        SetPairsOn("web1", ("www",), frozenset({"r"}), 30.0)
    ]
    off = apply(on, ops_for(SetPairsOff("web1", ("www",), frozenset({"r"})), "A", 3, vss_of))
    on2 = apply(off, ops_for(SetPairsOn("web1", ("www",), frozenset({"r"})), "A", 4, vss_of))
    assert [c.event for c in diff(off, on2)] == [SetPairsOn("web1", ("www",), frozenset({"r"}))]


def test_a_deletion_missed_while_away_is_found_by_the_catch_up_diff() -> None:
    believed = apply({}, ops_for(SetHostOff("web1", frozenset({"deploy"})), "A", 1, vss_of))
    believed = apply(believed, ops_for(SetOverride("web2", 4, ("www",)), "A", 1, vss_of))
    now = apply(believed, forget_ops("web2"))
    now = apply(now, ops_for(SetHostOn("web1", frozenset({"deploy"})), "B", 2, vss_of))
    events = [c.event for c in diff(believed, now)]
    assert SetHostOn("web1", frozenset({"deploy"})) in events
    assert SetOverride("web2", None, ("www",)) in events


def test_nothing_changed_gives_no_event() -> None:
    shared = apply({}, ops_for(SetHostOff("web1", frozenset({"x"})), "A", 1, vss_of))
    assert diff(shared, dict(shared)) == []


def test_describe_event_uses_the_console_words() -> None:
    assert describe_event(SetHostOff("web1", frozenset({"deploy"}))) == (
        "set host web1 off for reason deploy"
    )
    assert describe_event(SetPairsOn("web1", ("www",), None, 3.0)) == (
        "set host web1 on for vs www reason * in 3"
    )


def test_prefix_end() -> None:
    assert unb64(prefix_end("/ipvswm/a/")) == "/ipvswm/a0"


def test_cluster_options_that_do_not_go_together() -> None:
    problems = dict(cluster_problems({"cluster_etcd": "127.0.0.1:2379"}))
    assert problems == {"Cluster.Etcd": "Cluster.Name is required with Cluster.Etcd"}
    assert cluster_problems({"cluster_etcd_cert": "c.pem"})[0][0] == "Cluster.Etcd.Cert"
    assert cluster_problems({"cluster_etcd_user": "u"})[0][0] == "Cluster.Etcd.User"
    assert cluster_problems({"cluster_etcd": "h:1", "cluster_name": "p"}) == []
    assert Delete("x").prefix is False


def test_readme_two_directors_config_is_valid() -> None:
    import re
    from pathlib import Path

    from ipvswm.config.parser import parse_text

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two directors", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```ini\n(.*?)```", section, re.DOTALL)
    assert block is not None

    def no_dns(name: str) -> list[str]:
        raise AssertionError(f"the example must not need a name lookup ({name})")

    result = parse_text(block.group(1), "README.md", no_dns)
    assert result.errors == ()
    assert result.config is not None
    assert result.config.options.cluster_name == "site1"


def test_forget_is_shared_last_and_its_deletions_are_marked() -> None:
    from ipvswm.events import ForgetHost

    shared = apply({}, ops_for(SetHostOff("web2", frozenset({"deploy"})), "A", 1, vss_of))
    shared = apply(shared, ops_for(SetOverride("web2", 4, ("www",)), "A", 1, vss_of))
    after = apply(shared, forget_ops("web2", "B", 2.0))
    assert set(after) == {"forget/web2"}
    changes = diff(shared, after)
    assert changes[-1].event == ForgetHost("web2")
    assert (changes[-1].node, changes[-1].at) == ("B", 2.0)
    assert all(c.forgotten and c.node == "B" for c in changes[:-1])
    assert describe_event(changes[-1].event) == "forget host web2"
    # Only the removed pairs of a host still configured: its host-level reason stays.
    pairs = apply(shared, forget_ops("web2", "B", 3.0, ("www",)))
    assert "host/web2/reason/deploy" in pairs and "host/web2/vs/www/override" not in pairs
    assert diff(after, dict(after)) == []  # an old forget is not applied again
