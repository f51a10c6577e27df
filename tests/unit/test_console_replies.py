"""Replies that tell the truth (issue 10 items 10 and 12): what still holds a host, and no
terminal escapes from console input in replies, `show` or reasons."""

from __future__ import annotations

import pytest

from ipvswm.answers import Refused
from ipvswm.console.command_types import Admin
from ipvswm.console.command_types import ParseError
from ipvswm.console.grammar import parse
from ipvswm.console.render import printable
from ipvswm.console.session import Session
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn
from tests.unit.console_control import EngineControl
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import basic
from tests.unit.test_engine_fixtures import healthy

# --- item 10: `set host H on` names what still holds H, and fails when it removed nothing -----


def test_on_that_removes_no_reason_of_a_held_host_is_an_error_naming_its_reasons() -> None:
    d = healthy(basic())
    d.at(T0 + 1).feed(SetHostOff("web1", frozenset({"maint"})))
    step = d.at(T0 + 2).feed(SetHostOn("web1"))  # removes 'default', which it does not have
    assert step.error == Refused(
        "nothing removed: host web1 has no reason 'default'; still off (maint)"
    )
    assert not step.changes and not step.decisions


def test_on_names_pair_reasons_that_still_hold_the_host() -> None:
    d = healthy(basic())
    d.at(T0 + 1).feed(SetPairsOff("web1", ("web",), frozenset({"deploy"})))
    step = d.at(T0 + 2).feed(SetHostOn("web1", None))  # '*': the host itself has no reason
    assert step.error == Refused(
        "nothing removed: host web1 has no reason at all; still off (vs web: deploy)"
    )
    d.feed(SetHostOff("web1"))
    step = d.at(T0 + 3).feed(SetHostOn("web1"))  # removes 'default': applied, and told why
    assert step.error is None
    assert step.note == "still off (vs web: deploy)"


def test_pair_on_that_removes_nothing_names_the_host_reasons() -> None:
    d = healthy(basic())
    d.at(T0 + 1).feed(SetHostOff("web1", frozenset({"kernel"})))
    step = d.at(T0 + 2).feed(SetPairsOn("web1", ("web",)))
    assert step.error == Refused(
        "nothing removed: host web1 on vs web has no reason 'default'; still off (kernel)"
    )


def test_on_for_a_host_that_is_not_held_stays_a_harmless_no_op() -> None:
    d = healthy(basic())
    step = d.at(T0 + 2).feed(SetHostOn("web1"))
    assert step.error is None and step.note == "nothing to do"


async def test_the_console_fails_a_set_on_the_engine_refused() -> None:
    session = Session(EngineControl())
    assert (await session.handle("set host web1 off reason b")).ok
    reply = await session.handle("set host web1 on")
    assert (reply.ok, reply.status) == (False, 1)
    assert reply.lines == ["# nothing removed: host web1 has no reason 'default'; still off (b)"]


# --- item 12: reasons limited, control characters escaped --------------------------------------


@pytest.mark.parametrize(
    "reason",
    ["\x1b[2J", "a\x07b", "x" * 65, "zero\u200bwidth", "rtl\u202eoverride", "semi;colon", "é"],
)
def test_reasons_outside_the_charset_or_too_long_are_refused(reason: str) -> None:
    result = parse(f"set host web1 off reason {reason}")
    assert isinstance(result, ParseError)
    assert result.message.startswith("bad reason ")
    assert "at most 64 characters" in result.message
    assert printable(result.message) == result.message  # the refusal itself is harmless


def test_ordinary_reasons_are_accepted() -> None:
    result = parse("set host web1 off reasons deploy,JIRA-123,kernel:6.1,ops@night," + "x" * 64)
    assert isinstance(result, Admin) and isinstance(result.event, SetHostOff)
    assert result.event.reasons == {"deploy", "JIRA-123", "kernel:6.1", "ops@night", "x" * 64}


def test_printable_escapes_control_and_format_characters() -> None:
    assert printable("plain text, tabs aside") == "plain text, tabs aside"
    assert printable("a\x1b[31mred\x07\r\n") == "a\\x1b[31mred\\x07\\x0d\\x0a"
    assert printable("\u202e\u2028\x85") == "\\u202e\\u2028\\x85"


async def test_text_replies_never_carry_terminal_escapes() -> None:
    control = EngineControl()
    session = Session(control)
    line = "show host \x1b]0;owned\x07"
    sent = session.encode(await session.handle(line), line)
    assert b"\x1b" not in sent and b"\x07" not in sent
    assert b"no such host '\\x1b]0;owned\\x07'" in sent


async def test_show_escapes_a_stored_reason_with_control_characters() -> None:
    control = EngineControl()
    # e.g. written by an older version before reasons were limited
    control.feed(SetHostOff("web1", frozenset({"evil\x1b[2J"})))
    session = Session(control)
    sent = session.encode(await session.handle("show host web1"), "show host web1")
    assert b"\x1b" not in sent
    assert b"Reasons=host:evil\\x1b[2J" in sent
