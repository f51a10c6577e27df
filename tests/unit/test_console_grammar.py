"""The console grammar: every command form of SPEC §7, near misses, hints and help."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvswm.console.command_types import Admin
from ipvswm.console.command_types import ConfigAction
from ipvswm.console.command_types import ConfigCmd
from ipvswm.console.command_types import Dump
from ipvswm.console.command_types import DumpWhat
from ipvswm.console.command_types import Format
from ipvswm.console.command_types import Help
from ipvswm.console.command_types import History
from ipvswm.console.command_types import LogLevel
from ipvswm.console.command_types import ParseError
from ipvswm.console.command_types import Quit
from ipvswm.console.command_types import Repeat
from ipvswm.console.command_types import ShowChecks
from ipvswm.console.command_types import ShowHosts
from ipvswm.console.command_types import ShowVs
from ipvswm.console.command_types import Wait
from ipvswm.console.command_types import WaitFor
from ipvswm.console.grammar import COMMANDS
from ipvswm.console.grammar import help_lines
from ipvswm.console.grammar import parse
from ipvswm.console.grammar import split_words
from ipvswm.events import ForgetHost
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn

D = frozenset({"default"})


def set_cmd(
    host: str,
    on: bool,
    vss: tuple[str, ...] | None = None,
    reasons: frozenset[str] | None = D,
    ramp: float | None = None,
) -> Admin:
    """`set host H on|off …` as parsed: the engine's event for the host (or its pairs)."""
    if not on:
        assert reasons is not None
        return Admin(SetHostOff(host, reasons) if vss is None else SetPairsOff(host, vss, reasons))
    if vss is None:
        return Admin(SetHostOn(host, reasons, ramp))
    return Admin(SetPairsOn(host, vss, reasons, ramp))


def weight_cmd(host: str, weight: int | None, vss: tuple[str, ...] | None = None) -> Admin:
    return Admin(SetOverride(host, weight, vss))


def R(*names: str) -> frozenset[str]:
    return frozenset(names)


FORMS = [
    ("help", Help()),
    ("h", Help()),
    ("?", Help()),
    ("HELP set", Help("set")),
    ("history", History()),
    ("!", Repeat()),
    ("!3", Repeat(3)),
    ("! 3", Repeat(3)),
    ("config reload", ConfigCmd(ConfigAction.RELOAD)),
    ("config diff", ConfigCmd(ConfigAction.DIFF)),
    ("Config CHECK", ConfigCmd(ConfigAction.CHECK)),
    ("dump status", Dump(DumpWhat.STATUS)),
    ("dump options", Dump(DumpWhat.OPTIONS)),
    ("dump checkers", Dump(DumpWhat.CHECKERS)),
    ("dump host", Dump(DumpWhat.HOSTS)),
    ("dump hosts", Dump(DumpWhat.HOSTS)),
    ("dump host Web1", Dump(DumpWhat.HOSTS, "Web1")),
    ("dump vs", Dump(DumpWhat.VS)),
    ("dump vs www", Dump(DumpWhat.VS, "www")),
    # host level
    ("set host web1 off", set_cmd("web1", False)),
    ("set host web1 on", set_cmd("web1", True)),
    ("set host web1 on 20", set_cmd("web1", True, ramp=20.0)),
    ("set host web1 on 20s", set_cmd("web1", True, ramp=20.0)),
    ("set host web1 on in 20", set_cmd("web1", True, ramp=20.0)),
    ("set host web1 on in 20S", set_cmd("web1", True, ramp=20.0)),
    ("set host web1 off for reason deploy", set_cmd("web1", False, reasons=R("deploy"))),
    (
        "set host web1 off reasons deploy, kernel",
        set_cmd("web1", False, reasons=R("deploy", "kernel")),
    ),
    ("set host web1 off for deploy", set_cmd("web1", False, reasons=R("deploy"))),
    ("set host web1 on reasons deploy", set_cmd("web1", True, reasons=R("deploy"))),
    ("set host web1 on reason *", set_cmd("web1", True, reasons=None)),
    ("set host web1 on for reasons * in 30", set_cmd("web1", True, reasons=None, ramp=30.0)),
    ("set host web1 on reason deploy in 30", set_cmd("web1", True, reasons=R("deploy"), ramp=30.0)),
    # `on` takes the reason forms of `off` (`for R`, `for reason[s] R`, `reason[s] R`) and `*`
    ("set host web1 on for deploy", set_cmd("web1", True, reasons=R("deploy"))),
    ("set host web1 on for *", set_cmd("web1", True, reasons=None)),
    ("set host web1 on for deploy,kernel", set_cmd("web1", True, reasons=R("deploy", "kernel"))),
    ("set host web1 on for deploy in 30", set_cmd("web1", True, reasons=R("deploy"), ramp=30.0)),
    ("set host web1 on for * 30s", set_cmd("web1", True, reasons=None, ramp=30.0)),
    # pair level
    ("set host web1 off vs www", set_cmd("web1", False, ("www",))),
    ("set host web1 off on vs www", set_cmd("web1", False, ("www",))),
    ("set host web1 off for vs www,api", set_cmd("web1", False, ("www", "api"))),
    ("set host web1 off in vs www , api", set_cmd("web1", False, ("www", "api"))),
    (
        "set host web1 off for vs www,api for reasons deploy,kernel",
        set_cmd("web1", False, ("www", "api"), R("deploy", "kernel")),
    ),
    ("set host web1 off vs www for deploy", set_cmd("web1", False, ("www",), R("deploy"))),
    ("set host web1 off vs www reason deploy", set_cmd("web1", False, ("www",), R("deploy"))),
    ("set host web1 off vs www for reason deploy", set_cmd("web1", False, ("www",), R("deploy"))),
    ("set host web1 on vs www", set_cmd("web1", True, ("www",))),
    ("set host web1 on in vs www reasons *", set_cmd("web1", True, ("www",), None)),
    ("set host web1 on for vs www for reasons a,b", set_cmd("web1", True, ("www",), R("a", "b"))),
    ("set host web1 on on vs www 15", set_cmd("web1", True, ("www",), D, 15.0)),
    ("set host web1 on vs www reasons x in 15s", set_cmd("web1", True, ("www",), R("x"), 15.0)),
    ("set host web1 on vs www in 2.5", set_cmd("web1", True, ("www",), D, 2.5)),
    ("set host web1 on vs www for deploy", set_cmd("web1", True, ("www",), R("deploy"))),
    ("set host web1 on vs www for *", set_cmd("web1", True, ("www",), None)),
    ("set host web1 on vs www for reason deploy", set_cmd("web1", True, ("www",), R("deploy"))),
    ("set host web1 on vs www reason deploy", set_cmd("web1", True, ("www",), R("deploy"))),
    ("set host web1 on for deploy vs www", set_cmd("web1", True, ("www",), R("deploy"))),
    ("set host web1 on for vs www for a,b in 5", set_cmd("web1", True, ("www",), R("a", "b"), 5.0)),
    ("set host web1 on for vs www for * in 5", set_cmd("web1", True, ("www",), None, 5.0)),
    # weight
    ("set host web1 weight 10", weight_cmd("web1", 10)),
    ("set host web1 weight default", weight_cmd("web1", None)),
    ("set host web1 weight 0 for vs www,api", weight_cmd("web1", 0, ("www", "api"))),
    ("set host web1 weight 65535 vs www", weight_cmd("web1", 65535, ("www",))),
    # local (this director only) and forget
    ("set host web1 off local", Admin(SetHostOff("web1"), local=True)),
    ("set host web1 on vs www local in 5", Admin(SetPairsOn("web1", ("www",), D, 5.0), True)),
    ("set host web1 weight 3 local", Admin(SetOverride("web1", 3), local=True)),
    ("forget host old", Admin(ForgetHost("old"))),
    ("forget host old local", Admin(ForgetHost("old"), local=True)),
    # show
    ("show vs", ShowVs()),
    ("show vs www", ShowVs(("www",))),
    ("show hosts", ShowHosts()),
    ("show host", ShowHosts()),
    ("show hosts for www,api", ShowHosts(None, ("www", "api"))),
    ("show hosts in vs www", ShowHosts(None, ("www",))),
    ("show host web1", ShowHosts(("web1",))),
    ("show hosts web1, web2 for www", ShowHosts(("web1", "web2"), ("www",))),
    ("show hosts web1 in www", ShowHosts(("web1",), ("www",))),
    ("show checks", ShowChecks()),
    # wait
    ("wait host web1 quiescent", Wait("web1", WaitFor.QUIESCENT)),
    ("wait host web1 up timeout 5", Wait("web1", WaitFor.UP, timeout=5.0)),
    ("wait host web1 down for vs www,api", Wait("web1", WaitFor.DOWN, ("www", "api"))),
    ("wait host web1 up vs www timeout 10s", Wait("web1", WaitFor.UP, ("www",), 10.0)),
    # misc
    ("format json", Format(True)),
    ("FORMAT Text", Format(False)),
    ("log level 5", LogLevel(5)),
    ("quit", Quit()),
    ("EXIT", Quit()),
]


@pytest.mark.parametrize(("line", "expected"), FORMS, ids=[f[0] for f in FORMS])
def test_every_form(line: str, expected: object) -> None:
    assert parse(line) == expected


def test_whitespace_and_case_collapse_but_tags_keep_case() -> None:
    assert parse("  SET   Host  Web1\tOFF  FOR vs  WWW ") == set_cmd("Web1", False, ("WWW",))


NEAR_MISSES = [
    ("set host web1 of", "set host H off"),
    ("set host web1", "set host H"),
    ("set host", "set host H"),
    ("set hosts web1 off", "set host H"),
    ("set host web1 on for 20", "set host H on"),
    ("set host web1 on vs www for 20s", "set host H on"),
    ("set host web1 on for", "set host H on"),
    ("set host web1 on for deploy for x", "set host H on"),
    ("set host web1 off reasons *", "set host H off"),
    ("set host web1 off 20", "set host H off"),
    ("set host web1 weight x", "set host H weight"),
    ("set host web1 weight 65536", "set host H weight"),
    ("set host web1 on vs", "set host H on"),
    ("set host web1 on vs a,,b", "set host H on"),
    ("sho hosts", "show host[s]"),
    ("show host web1 for", "show host[s]"),
    ("shw checks", "show checks"),
    ("show vs www extra", "show vs"),
    ("wait host web1 sideways", "wait host"),
    ("wait host web1 up timeout", "wait host"),
    ("dump everything", "dump"),
    ("dump host a b", "dump host"),
    ("config", "config"),
    ("format xml", "format"),
    ("log level high", "log level"),
    ("quit now", "quit"),
    ("frobnicate", "help"),
    ("", "help"),
    ("!x", "help"),
]


@pytest.mark.parametrize(("line", "hint"), NEAR_MISSES, ids=[n[0] or "empty" for n in NEAR_MISSES])
def test_near_misses_give_a_hint(line: str, hint: str) -> None:
    result = parse(line)
    assert isinstance(result, ParseError)
    assert result.message
    assert result.hint.startswith(hint), result.hint


def test_split_words_joins_lists() -> None:
    assert split_words(" show hosts a , b ,c  for x, y") == ["show", "hosts", "a,b,c", "for", "x,y"]


def test_help_lists_every_syntax_of_the_table() -> None:
    text = "\n".join(help_lines())
    for entry in COMMANDS:
        assert entry.syntax in text
        for form, _ in entry.forms:
            assert form in text
    assert not any(line.startswith("{") for line in help_lines())  # JSON framing relies on it


def test_help_topic_filters() -> None:
    lines = help_lines("wait")
    assert lines[0].strip().startswith("wait host H")
    assert not any(line.strip().startswith("show") for line in lines)


@given(st.text(max_size=80))
def test_parse_never_raises(line: str) -> None:
    result = parse(line)
    assert result is not None


@given(
    st.lists(
        st.sampled_from(
            [
                "set",
                "host",
                "web1",
                "on",
                "off",
                "for",
                "in",
                "vs",
                "www,api",
                "reasons",
                "reason",
                "*",
                "20",
                "20s",
                "weight",
                "default",
                "show",
                "hosts",
                "wait",
                "up",
                "timeout",
                "x,",
            ]
        ),
        max_size=9,
    )
)
def test_parse_never_raises_on_keyword_soup(words: list[str]) -> None:
    result = parse(" ".join(words))
    assert result is not None


@pytest.mark.parametrize(
    "line", ["set host web1 weight ¹", "set host web1 on in ٣", "wait host web1 up timeout ²", "!¹"]
)
def test_non_ascii_digits_are_refused_not_crashed_on(line: str) -> None:
    assert isinstance(parse(line), ParseError)


def test_on_for_a_number_says_how_to_ramp() -> None:
    result = parse("set host web1 on for 20")
    assert isinstance(result, ParseError)
    assert result.message == "'for 20': use 'in N' for a ramp, 'reason N' for a reason"
    assert parse("set host web1 on for reason 20") == set_cmd("web1", True, reasons=R("20"))
