"""`describe_diff` compares only the pairs of hosts and VSs that changed: the same lines as a
comparison of every pair (the reference below), on random pairs of configs."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ipvswm.config.diff import describe_diff
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import Config
from ipvswm.config.model import Host
from ipvswm.config.model import Pair
from ipvswm.config.model import VirtualService

VS_TAGS = ("www", "api", "img")
HOST_TAGS = ("web1", "web2", "web3", "web4")


@st.composite
def configs(draw: st.DrawFn) -> Config:
    services = []
    for tag in VS_TAGS:
        if draw(st.booleans()) or tag == "www":
            port = draw(st.sampled_from([80, 443]))
            path = draw(st.sampled_from(["/health", "/ok"]))
            services.append(
                VirtualService(
                    tag,
                    "192.0.2.10",
                    port,
                    draw(st.sampled_from([port, 8080])),
                    CheckSpec(CheckKind.HTTP, path=path),
                )
            )
    tags = [vs.tag for vs in services]
    hosts = []
    for tag in HOST_TAGS:
        if not draw(st.booleans()):
            continue
        on = draw(st.lists(st.sampled_from(tags), unique=True, max_size=len(tags)))
        weights = tuple((vs, draw(st.integers(0, 3))) for vs in on)
        address = draw(st.sampled_from(["198.51.100.1", "198.51.100.2"]))
        port = draw(st.sampled_from([None, 81]))
        agent = draw(st.sampled_from([None, 0, 4000]))
        hosts.append(Host(tag, address, port, weights, agent_port=agent))
    return Config("test.conf", services=tuple(services), hosts=tuple(hosts))


def every_pair_lines(old: Config, new: Config) -> list[str]:
    """The pair lines, from a comparison of every pair of both configs."""
    old_pairs = {(p.vs, p.host): p for p in old.pairs()}
    new_pairs = {(p.vs, p.host): p for p in new.pairs()}
    lines = [
        f"add host {h} to vs {v} (weight {new_pairs[(v, h)].weight})"
        for v, h in sorted(new_pairs.keys() - old_pairs.keys())
    ]
    lines += [
        f"remove host {h} from vs {v}" for v, h in sorted(old_pairs.keys() - new_pairs.keys())
    ]
    for key in sorted(old_pairs.keys() & new_pairs.keys()):
        a, b = old_pairs[key], new_pairs[key]
        if (a.address, a.port) != (b.address, b.port):
            lines.append(
                f"vs {key[0]} host {key[1]}: address {a.address}:{a.port} -> {b.address}:{b.port}"
            )
        if a.weight != b.weight:
            lines.append(f"vs {key[0]} host {key[1]}: weight {a.weight} -> {b.weight}")
        if (a.agent, a.agent_interval) != (b.agent, b.agent_interval):
            lines.append(f"vs {key[0]} host {key[1]}: {agent(a)} -> {agent(b)}")
    return lines


def agent(pair: Pair) -> str:
    return "no agent" if pair.agent is None else f"{pair.agent} every {pair.agent_interval:g}s"


def is_pair_line(line: str) -> bool:
    return (line.startswith(("add host ", "remove host ")) and " vs " in line) or (
        line.startswith("vs ") and " host " in line
    )


@settings(max_examples=300, deadline=None)
@given(configs(), configs())
def test_the_pair_lines_are_those_of_a_comparison_of_every_pair(old: Config, new: Config) -> None:
    lines = [line for line in describe_diff(old, new) if is_pair_line(line)]
    assert lines == every_pair_lines(old, new)


def test_a_config_computes_its_pairs_once_and_not_across_replace() -> None:
    vs = VirtualService("www", "192.0.2.10", 80, 80, CheckSpec(CheckKind.HTTP))
    config = Config(
        "a.conf", services=(vs,), hosts=(Host("web1", "198.51.100.1", None, (("www", 1),)),)
    )
    assert config.pair_list() is config.pair_list()
    assert len(config.check_targets()) == 1
    other = dataclasses.replace(config, hosts=())
    assert other.pair_list() == () and other.check_targets() == frozenset()
    assert other == dataclasses.replace(config, hosts=()) and config != other
