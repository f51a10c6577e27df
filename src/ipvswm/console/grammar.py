"""The console's command grammar (SPEC §7): a typed command table, `parse(line)`, and help text.

Pure: no I/O. Keywords are case-insensitive; tags (hosts, VSs, reasons) keep their case. Lists
accept `a,b` and `a, b`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ipvswm.console.command_types import DEFAULT_WAIT_TIMEOUT
from ipvswm.console.command_types import MAX_WAIT_TIMEOUT
from ipvswm.console.command_types import MAX_WEIGHT
from ipvswm.console.command_types import Admin
from ipvswm.console.command_types import Auth
from ipvswm.console.command_types import Command
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
from ipvswm.console.command_types import ShowCluster
from ipvswm.console.command_types import ShowHosts
from ipvswm.console.command_types import ShowVs
from ipvswm.console.command_types import Wait
from ipvswm.console.command_types import WaitFor
from ipvswm.console.words import Fail
from ipvswm.console.words import Words
from ipvswm.console.words import integer
from ipvswm.console.words import reasons_list
from ipvswm.console.words import seconds
from ipvswm.console.words import split_words
from ipvswm.console.words import take_seconds
from ipvswm.console.words import vs_clause
from ipvswm.events import ForgetHost
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn
from ipvswm.vocabulary import DEFAULT_REASON

# --- parsers, one per command family ----------------------------------------------------------


def _p_help(w: Words) -> Command:
    topic = None if w.done() else w.tag("topic").lower()
    w.end()
    return Help(topic)


def _p_history(w: Words) -> Command:
    w.end()
    return History()


def _p_config(w: Words) -> Command:
    action = ConfigAction(w.expect("reload", "diff", "check"))
    force = action is ConfigAction.RELOAD and w.accept("force") is not None
    w.end()
    return ConfigCmd(action, force)


def _p_dump(w: Words) -> Command:
    word = w.expect("status", "options", "checkers", "host", "hosts", "vs")
    name: str | None = None
    if word in ("host", "hosts"):
        what = DumpWhat.HOSTS
        name = None if w.done() else w.tag("host")
    elif word == "vs":
        what = DumpWhat.VS
        name = None if w.done() else w.tag("vs")
    else:
        what = DumpWhat(word)
    w.end()
    return Dump(what, name)


def _p_set(w: Words) -> Command:
    w.expect("host")
    host = w.tag("host")
    word = w.expect("on", "off", "weight")
    if word == "weight":
        value = w.peek()
        weight = None if value == "default" else integer(value, "weight", MAX_WEIGHT)
        w.pos += 1
        vss = vs_clause(w)
        local = w.accept("local") is not None
        w.end()
        return Admin(SetOverride(host, weight, vss), local)
    return _set_on_off(w, host, word == "on")


def _set_on_off(w: Words, host: str, on: bool) -> Command:
    """The optional clauses of `set host H on|off`, in any order, each at most once: the
    host's or (with `vs V…`) its pairs' admin event."""
    vss: tuple[str, ...] | None = None
    reasons: frozenset[str] | None = frozenset({DEFAULT_REASON})
    have_reasons = False
    ramp: float | None = None
    local = False
    while not w.done():
        if not local and w.accept("local"):
            local = True  # this director only (issue 12)
            continue
        if vss is None and (clause := vs_clause(w)) is not None:
            vss = clause
            continue
        if not have_reasons and (w.at("reason", "reasons") or w.at("for")):
            if w.accept("for") and on and seconds(w.peek()) is not None:
                # `on for 20`: a ramp written with the wrong word, not a reason named 20
                raise Fail(f"'for {w.peek()}': use 'in N' for a ramp, 'reason N' for a reason")
            w.accept("reason", "reasons")
            if w.peek() in ("*", "all"):  # `all`: a shell expands an unquoted `*`
                if not on:
                    raise Fail(f"'{w.peek()}' (all reasons) only works with 'on'")
                w.pos += 1
                reasons = None
            else:
                reasons = reasons_list(w)
            have_reasons = True
            continue
        if on and ramp is None and (w.at("in") or seconds(w.peek()) is not None):
            w.accept("in")
            ramp = take_seconds(w, "ramp")
            continue
        # Several stray words after a reason: most likely a shell expanded an unquoted `*`.
        hint = " (for all reasons write 'all': a shell expands '*')" if have_reasons else ""
        raise Fail(f"unexpected '{w.words[w.pos]}'{hint}")
    if not on:
        assert reasons is not None  # `*` (all reasons) is refused above without `on`
        off = SetHostOff(host, reasons) if vss is None else SetPairsOff(host, vss, reasons)
        return Admin(off, local)
    if vss is None:
        return Admin(SetHostOn(host, reasons, ramp), local)
    return Admin(SetPairsOn(host, vss, reasons, ramp), local)


def _p_forget(w: Words) -> Command:
    w.expect("host")
    host = w.tag("host")
    local = w.accept("local") is not None
    w.end()
    return Admin(ForgetHost(host), local)


def _p_show(w: Words) -> Command:
    word = w.expect("vs", "host", "hosts", "checks", "check", "cluster")
    if word == "cluster":
        w.end()
        return ShowCluster()
    if word in ("checks", "check"):
        w.end()
        return ShowChecks()
    if word == "vs":
        vss = None if w.done() else w.tags("vs")
        w.end()
        return ShowVs(vss)
    hosts: tuple[str, ...] | None = None
    if not w.done() and not w.at("for", "in"):
        hosts = w.tags("host")
    vss = None
    if w.accept("for", "in", "on"):
        w.accept("vs")
        vss = w.tags("vs")
    w.end()
    return ShowHosts(hosts, vss)


def _p_wait(w: Words) -> Command:
    w.expect("host")
    host = w.tag("host")
    until = WaitFor(w.expect("quiescent", "up", "down"))
    vss = vs_clause(w)
    timeout = DEFAULT_WAIT_TIMEOUT
    if w.accept("timeout"):
        timeout = take_seconds(w, "timeout")
        if timeout > MAX_WAIT_TIMEOUT:
            raise Fail(f"timeout: at most {MAX_WAIT_TIMEOUT:g} seconds (1 day)")
    w.end()
    return Wait(host, until, vss, timeout)


def _p_format(w: Words) -> Command:
    value = w.expect("json", "text")
    w.end()
    return Format(json=value == "json")


def _p_log(w: Words) -> Command:
    w.expect("level")
    level = integer(w.peek(), "level", 100)
    w.pos += 1
    w.end()
    return LogLevel(level)


def _p_auth(w: Words) -> Command:
    if w.done():
        raise Fail("missing token")
    token = w.words[w.pos]
    w.pos += 1
    if not w.done():
        raise Fail("one token expected")
    return Auth(token)


def _p_quit(w: Words) -> Command:
    w.end()
    return Quit()


# --- the command table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the command table: the words that start it, its syntax, help and parser."""

    names: tuple[str, ...]
    syntax: str
    help: str
    parse: Callable[[Words], Command]
    forms: tuple[tuple[str, str], ...] = ()  # more (syntax, help) lines of the same family

    def syntaxes(self) -> tuple[str, ...]:
        return (self.syntax, *(form for form, _ in self.forms))


COMMANDS: tuple[Entry, ...] = (
    Entry(("help", "h", "?"), "help|h|? [WORD]", "this list (only commands starting with WORD)",
          _p_help),
    Entry(("history",), "history", "this session's numbered command history", _p_history),
    Entry(("config",), "config reload|diff|check",
          "reload the config file / show what a reload would do / validate the file", _p_config,
          (("config reload force",
            "reload even if it removes every VS or more than Config.MaxRemovedShare of the pairs"),
           )),
    Entry(("dump",), "dump status|options|checkers", "daemon facts / global options / checkers",
          _p_dump, (("dump host[s] [H]", "every stored field of the hosts (or host H)"),
                    ("dump vs [V]", "every stored field of the VSs (or VS V)"))),
    Entry(("set",), "set host H off [[on|for|in] vs V1,V2] [[for] reason[s] R1,R2]",
          "disable a host (or its pairs on these VSs) for reasons (default: 'default')", _p_set,
          (("set host H on [[on|for|in] vs V1,V2] [[for] reason[s] R1,R2|*] [[in] N[s]]",
            "remove reasons ('all' or '*': all); enabled when none is left, ramping up over N s"),
           ("set host H weight N|default [[for] vs V1,V2]",
            "override the configured weight (default: back to the configured weight)"),
           ("set host H ... local",
            "with a cluster store: change this director only (not shared)"))),
    Entry(("forget",), "forget host H [local]",
          "drop the admin state kept for H's hosts/pairs removed from the config", _p_forget),
    Entry(("show",), "show vs [V]", "the virtual services (or VS V with its pairs)", _p_show,
          (("show host[s] [H1,H2] [for|in V1,V2]", "pairs of hosts, then a summary per host"),
           ("show checks", "every checker with its status and last result"),
           ("show cluster", "the directors sharing admin state, the store's state and revision"))),
    Entry(("wait",), "wait host H quiescent|up|down [[for] vs V1,V2] [timeout N]",
          "wait until the kernel shows no active connection / full weight / weight 0", _p_wait),
    Entry(("format",), "format json|text", "reply format of this session", _p_format),
    Entry(("log",), "log level N", "change Log.Level", _p_log),
    Entry(("quit", "exit"), "quit|exit", "close this session (^D too)", _p_quit),
    Entry(("auth",), "auth TOKEN",
          "allow this session to change state (Management.Socket.Token)", _p_auth),
)  # fmt: skip

_REPEAT = re.compile(r"^!\s*([0-9]{1,9})?$")


def _keywords(syntax: str) -> set[str]:
    """The words of a syntax line, with `host[s]` giving both `host` and `hosts`."""
    expanded = re.sub(r"(\w+)\[(\w+)\]", r"\1 \1\2", syntax.lower())
    return set(re.findall(r"[a-z]+", expanded))


def _score(given: set[str], syntax: str) -> int:
    """Words in common, plus a bonus when the form's 4th word (on/off/weight) is given."""
    words = syntax.lower().split()
    bonus = 2 if len(words) > 3 and words[3] in given else 0
    return len(given & _keywords(syntax)) + bonus


def hint_for(line: str) -> str:
    """The syntax of the command closest to `line`: same first word, most words in common."""
    words = [w.lower() for w in split_words(line)]
    first = words[0] if words else ""
    for entry in COMMANDS:
        if first in entry.names:
            given = set(words)
            return max(entry.syntaxes(), key=lambda form: _score(given, form))
    names = [n for e in COMMANDS for n in e.names if len(n) > 1]
    close = difflib.get_close_matches(first, names, n=1, cutoff=0.6)
    if close:
        return hint_for(" ".join([close[0], *words[1:]]))
    return "help"


def parse(line: str) -> Command | ParseError:
    """Parse one console line."""
    text = line.strip()
    repeat = _REPEAT.match(text)
    if repeat:
        return Repeat(int(repeat.group(1)) if repeat.group(1) else None)
    words = split_words(text)
    if not words:
        return ParseError("empty command", "help")
    first = words[0].lower()
    for entry in COMMANDS:
        if first in entry.names:
            cursor = Words(words[1:])
            try:
                return entry.parse(cursor)
            except Fail as exc:
                return ParseError(str(exc), hint_for(text))
    return ParseError(f"unknown command '{words[0]}'", hint_for(text))


def help_lines(topic: str | None = None) -> list[str]:
    """The help text generated from the command table."""
    entries = [e for e in COMMANDS if topic is None or any(n.startswith(topic) for n in e.names)]
    lines: list[str] = []
    for entry in entries:
        for syntax, text in ((entry.syntax, entry.help), *entry.forms):
            lines.append(f"  {syntax}")
            lines.append(f"      {text}")
    if topic is None or topic.startswith("!"):
        lines.append("  !|!N")
        lines.append("      repeat the last command / history entry N")
    return lines
