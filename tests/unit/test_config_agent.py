"""Agent feedback in the config (issue 13 §2): `agent=PORT`, `agent_interval=` on VSs and hosts."""

from __future__ import annotations

from ipvswm.config.agent import agent_polls
from ipvswm.config.diff import describe_diff
from ipvswm.config.model import AgentTarget
from ipvswm.config.model import Config
from ipvswm.config.parser import parse_text


def no_dns(name: str) -> list[str]:
    raise AssertionError(f"no name lookup expected ({name})")


def parse(text: str) -> Config:
    result = parse_text(text, "t.conf", no_dns)
    assert result.errors == (), result.messages()
    assert result.config is not None
    return result.config


def errors(text: str) -> list[str]:
    result = parse_text(text, "t.conf", no_dns)
    assert result.config is None
    return result.messages()


def agents(config: Config) -> dict[tuple[str, str], tuple[AgentTarget | None, float]]:
    return {(p.vs, p.host): (p.agent, p.agent_interval) for p in config.pairs()}


def test_vs_option_gives_every_pair_an_agent_at_the_check_interval() -> None:
    cfg = parse(
        "Check.Interval=4\n"
        "! www 192.0.2.1:80 /health agent=9777\n"
        "! api 192.0.2.1:81 tcp:// interval=2,agent=9777,agent_interval=7\n"
        "web1 127.0.0.2 www=100 api=10\n"
    )
    assert cfg.services[0].agent_port == 9777 and cfg.services[0].agent_interval is None
    assert agents(cfg) == {
        ("www", "web1"): (AgentTarget("127.0.0.2", 9777), 4.0),
        ("api", "web1"): (AgentTarget("127.0.0.2", 9777), 7.0),
    }


def test_host_options_win_over_the_vs_and_off_opts_a_host_out() -> None:
    cfg = parse(
        "! www 192.0.2.1:80 /health agent=9777,agent_interval=2\n"
        "! dns 192.0.2.1:53 - proto=udp\n"
        "web1 127.0.0.2 www=100 agent_interval=1\n"
        "web2 127.0.0.3 www=100,agent=off\n"
        "web3 127.0.0.4 dns=5 agent=9778\n"
        "web4 127.0.0.5 agent=9779 www=50\n"
    )
    assert agents(cfg) == {
        ("www", "web1"): (AgentTarget("127.0.0.2", 9777), 1.0),
        ("www", "web2"): (None, 2.0),
        ("dns", "web3"): (AgentTarget("127.0.0.4", 9778), 5.0),
        ("www", "web4"): (AgentTarget("127.0.0.5", 9779), 2.0),
    }
    assert [h.weights for h in cfg.hosts][1] == (("www", 100),)


def test_a_vs_tagged_agent_keeps_the_original_meaning_of_a_weight() -> None:
    cfg = parse("! agent 192.0.2.1:80 /health\nweb1 127.0.0.2 agent=100\n")
    assert cfg.hosts[0].weights == (("agent", 100),)
    assert cfg.hosts[0].agent_port is None


def test_bad_values_are_errors_with_their_line() -> None:
    assert errors(
        "! www 192.0.2.1:80 /health agent=0\n"
        "! api 192.0.2.1:81 /health agent=9777,agent_interval=fast\n"
        "web1 127.0.0.2 www=1 agent=x\n"
        "web2 127.0.0.3 www=1 agent=1 agent=2 agent_interval=0\n"
    ) == [
        "t.conf:1: virtual service 'www': option agent: bad value '0': "
        "expected an integer 1..65535",
        "t.conf:2: virtual service 'api': option agent_interval: bad value 'fast': "
        "expected seconds > 0 (e.g. 5 or 2.5)",
        "t.conf:3: host 'web1': option agent: bad value 'x': expected a port 1..65535 or off",
        "t.conf:4: host 'web2': option 'agent' given twice",
        "t.conf:4: host 'web2': option agent_interval: bad value '0': "
        "expected seconds > 0 (e.g. 5 or 2.5)",
    ]


def test_one_poll_per_address_and_port_at_the_shortest_interval_and_timeouts() -> None:
    cfg = parse(
        "! www 192.0.2.1:80 /health agent=9777,agent_interval=3,connect_timeout=0.5\n"
        "! api 192.0.2.1:81 tcp:// agent=9777,agent_interval=1,timeout=2\n"
        "! img 192.0.2.1:82 tcp:// agent=9778\n"
        "web1 127.0.0.2 www=100 api=10 img=1\n"
        "web2 127.0.0.3 www=100\n"
    )
    polls = agent_polls(cfg)
    assert sorted((t.address, t.port) for t in polls) == [
        ("127.0.0.2", 9777),
        ("127.0.0.2", 9778),
        ("127.0.0.3", 9777),
    ]
    shared = polls[AgentTarget("127.0.0.2", 9777)]
    assert (shared.interval, shared.connect_timeout, shared.timeout) == (1.0, 0.5, 2.0)
    assert polls[AgentTarget("127.0.0.3", 9777)].interval == 3.0


def test_an_exec_check_stops_its_arguments_at_the_agent_option() -> None:
    cfg = parse("! www 192.0.2.1:80 exec:/bin/true %a agent=9777\nweb1 127.0.0.2 www=1\n")
    assert cfg.services[0].check.argv == ("/bin/true", "%a")
    assert cfg.services[0].agent_port == 9777


def test_config_diff_names_agent_changes() -> None:
    old = parse("! www 192.0.2.1:80 /health\nweb1 127.0.0.2 www=100\nweb2 127.0.0.3 www=1\n")
    new = parse(
        "! www 192.0.2.1:80 /health agent=9777\nweb1 127.0.0.2 www=100\n"
        "web2 127.0.0.3 www=1 agent=off\n"
    )
    assert describe_diff(old, new) == [
        "vs www host web1: no agent -> agent 127.0.0.2:9777 every 5s",
        "agent polls: 1 to start, 0 to stop",
    ]
