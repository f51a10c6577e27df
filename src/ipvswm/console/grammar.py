"""The console's command grammar (SPEC §7): a typed command table, `parse(line)`, and help text.

Pure: no I/O. Keywords are case-insensitive; tags (hosts, VSs, reasons) keep their case. Lists
accept `a,b` and `a, b`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ipvswm.console.command_types import (
    DEFAULT_WAIT_TIMEOUT,
    MAX_WAIT_TIMEOUT,
    MAX_WEIGHT,
    Auth,
    Command,
    ConfigAction,
    ConfigCmd,
    Dump,
    DumpWhat,
    Forget,
    Format,
    Help,
    History,
    LogLevel,
    ParseError,
    Quit,
    Repeat,
    SetHost,
    SetWeight,
    ShowChecks,
    ShowCluster,
    ShowHosts,
    ShowVs,
    Wait,
    WaitFor,
)


class _Fail(Exception):
    """Raised inside a parser; turned into a ParseError with the entry's syntax as the hint."""


# --- tokens -----------------------------------------------------------------------------------


class _Words:
    """A cursor over the words of one line; keywords compared lower-case, tags kept as typed."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.words[i].lower() if i < len(self.words) else None

    def at(self, *keywords: str) -> bool:
        return self.peek() in keywords

    def accept(self, *keywords: str) -> str | None:
        word = self.peek()
        if word is not None and word in keywords:
            self.pos += 1
            return word
        return None

    def expect(self, *keywords: str) -> str:
        word = self.accept(*keywords)
        if word is None:
            found = self.peek()
            wanted = "|".join(keywords)
            raise _Fail(f"expected {wanted}" + (f", found '{found}'" if found else ""))
        return word

    def tag(self, what: str) -> str:
        if self.pos >= len(self.words):
            raise _Fail(f"missing {what}")
        word = self.words[self.pos]
        if "," in word:
            raise _Fail(f"one {what} expected, found a list '{word}'")
        self.pos += 1
        return word

    def tags(self, what: str) -> tuple[str, ...]:
        if self.pos >= len(self.words):
            raise _Fail(f"missing {what} list")
        word = self.words[self.pos]
        items = tuple(dict.fromkeys(word.split(",")))  # de-duplicated, order kept
        if any(not item for item in items):
            raise _Fail(f"empty name in list '{word}'")
        self.pos += 1
        return items

    def done(self) -> bool:
        return self.pos >= len(self.words)

    def end(self) -> None:
        if not self.done():
            raise _Fail(f"unexpected '{self.words[self.pos]}'")


MAX_REASON = 64
_REASON = re.compile(rf"[A-Za-z0-9_.:/@+-]{{1,{MAX_REASON}}}")
REASON_CHARS = "letters, digits and _ . : / @ + -"


def _reasons(w: _Words) -> frozenset[str]:
    """A reason list; each reason a short word of REASON_CHARS (they are logged and shown)."""
    reasons = w.tags("reason")
    for reason in reasons:
        if _REASON.fullmatch(reason) is None:
            shown = ascii(reason[:MAX_REASON] + ("..." if len(reason) > MAX_REASON else ""))
            raise _Fail(f"bad reason {shown}: use {REASON_CHARS}, at most {MAX_REASON} characters")
    return frozenset(reasons)


_LIST_COMMA = re.compile(r"\s*,\s*")
_SECONDS = re.compile(r"^([0-9]{1,9}(?:\.[0-9]+)?)s?$", re.IGNORECASE)


def split_words(line: str) -> list[str]:
    """Trim, collapse whitespace and join `a, b` lists into `a,b`."""
    return _LIST_COMMA.sub(",", line.strip()).split()


def _seconds(word: str | None) -> float | None:
    match = _SECONDS.match(word) if word is not None else None
    return float(match.group(1)) if match else None


def _take_seconds(w: _Words, what: str) -> float:
    value = _seconds(w.peek())
    if value is None:
        raise _Fail(f"{what}: a number of seconds expected")
    w.pos += 1
    return value


def _is_number(word: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts superscripts, which int() refuses."""
    return word.isascii() and word.isdigit()


def _int(word: str | None, what: str, high: int) -> int:
    if word is None or not _is_number(word) or len(word) > 9 or int(word) > high:
        raise _Fail(f"{what}: an integer 0..{high} expected")
    return int(word)


def _vs_clause(w: _Words) -> tuple[str, ...] | None:
    """`[on|for|in] vs V1,V2`, if present."""
    if w.at("on", "for", "in") and w.peek(1) == "vs":
        w.pos += 1
    if w.accept("vs"):
        return w.tags("vs")
    return None


# --- parsers, one per command family ----------------------------------------------------------


def _p_help(w: _Words) -> Command:
    topic = None if w.done() else w.tag("topic").lower()
    w.end()
    return Help(topic)


def _p_history(w: _Words) -> Command:
    w.end()
    return History()


def _p_config(w: _Words) -> Command:
    action = ConfigAction(w.expect("reload", "diff", "check"))
    force = action is ConfigAction.RELOAD and w.accept("force") is not None
    w.end()
    return ConfigCmd(action, force)


def _p_dump(w: _Words) -> Command:
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


def _p_set(w: _Words) -> Command:
    w.expect("host")
    host = w.tag("host")
    word = w.expect("on", "off", "weight")
    if word == "weight":
        value = w.peek()
        weight = None if value == "default" else _int(value, "weight", MAX_WEIGHT)
        w.pos += 1
        vss = _vs_clause(w)
        local = w.accept("local") is not None
        w.end()
        return SetWeight(host, weight, vss, local)
    return _set_on_off(w, host, word == "on")


def _set_on_off(w: _Words, host: str, on: bool) -> Command:
    """The optional clauses of `set host H on|off`, in any order, each at most once."""
    vss: tuple[str, ...] | None = None
    reasons: frozenset[str] | None = frozenset({"default"})
    have_reasons = False
    ramp: float | None = None
    local = False
    while not w.done():
        if not local and w.accept("local"):
            local = True  # this director only (issue 12)
            continue
        if vss is None and (clause := _vs_clause(w)) is not None:
            vss = clause
            continue
        if not have_reasons and (w.at("reason", "reasons") or w.at("for")):
            if w.accept("for") and on and _seconds(w.peek()) is not None:
                # `on for 20`: a ramp written with the wrong word, not a reason named 20
                raise _Fail(f"'for {w.peek()}': use 'in N' for a ramp, 'reason N' for a reason")
            w.accept("reason", "reasons")
            if w.peek() in ("*", "all"):  # `all`: a shell expands an unquoted `*`
                if not on:
                    raise _Fail(f"'{w.peek()}' (all reasons) only works with 'on'")
                w.pos += 1
                reasons = None
            else:
                reasons = _reasons(w)
            have_reasons = True
            continue
        if on and ramp is None and (w.at("in") or _seconds(w.peek()) is not None):
            w.accept("in")
            ramp = _take_seconds(w, "ramp")
            continue
        # Several stray words after a reason: most likely a shell expanded an unquoted `*`.
        hint = " (for all reasons write 'all': a shell expands '*')" if have_reasons else ""
        raise _Fail(f"unexpected '{w.words[w.pos]}'{hint}")
    return SetHost(host, on, vss, reasons, ramp, local)


def _p_forget(w: _Words) -> Command:
    w.expect("host")
    host = w.tag("host")
    local = w.accept("local") is not None
    w.end()
    return Forget(host, local)


def _p_show(w: _Words) -> Command:
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


def _p_wait(w: _Words) -> Command:
    w.expect("host")
    host = w.tag("host")
    until = WaitFor(w.expect("quiescent", "up", "down"))
    vss = _vs_clause(w)
    timeout = DEFAULT_WAIT_TIMEOUT
    if w.accept("timeout"):
        timeout = _take_seconds(w, "timeout")
        if timeout > MAX_WAIT_TIMEOUT:
            raise _Fail(f"timeout: at most {MAX_WAIT_TIMEOUT:g} seconds (1 day)")
    w.end()
    return Wait(host, until, vss, timeout)


def _p_format(w: _Words) -> Command:
    value = w.expect("json", "text")
    w.end()
    return Format(json=value == "json")


def _p_log(w: _Words) -> Command:
    w.expect("level")
    level = _int(w.peek(), "level", 100)
    w.pos += 1
    w.end()
    return LogLevel(level)


def _p_auth(w: _Words) -> Command:
    if w.done():
        raise _Fail("missing token")
    token = w.words[w.pos]
    w.pos += 1
    if not w.done():
        raise _Fail("one token expected")
    return Auth(token)


def _p_quit(w: _Words) -> Command:
    w.end()
    return Quit()


# --- the command table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the command table: the words that start it, its syntax, help and parser."""

    names: tuple[str, ...]
    syntax: str
    help: str
    parse: Callable[[_Words], Command]
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
            cursor = _Words(words[1:])
            try:
                return entry.parse(cursor)
            except _Fail as exc:
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
