"""The words of one console line (SPEC §7): a cursor over them and the small values a command
takes (names, lists, reasons, seconds, integers). Pure: no I/O."""

from __future__ import annotations

import re


class Fail(Exception):
    """Raised inside a parser; turned into a ParseError with the entry's syntax as the hint."""


# --- tokens -----------------------------------------------------------------------------------


class Words:
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
            raise Fail(f"expected {wanted}" + (f", found '{found}'" if found else ""))
        return word

    def tag(self, what: str) -> str:
        if self.pos >= len(self.words):
            raise Fail(f"missing {what}")
        word = self.words[self.pos]
        if "," in word:
            raise Fail(f"one {what} expected, found a list '{word}'")
        self.pos += 1
        return word

    def tags(self, what: str) -> tuple[str, ...]:
        if self.pos >= len(self.words):
            raise Fail(f"missing {what} list")
        word = self.words[self.pos]
        items = tuple(dict.fromkeys(word.split(",")))  # de-duplicated, order kept
        if any(not item for item in items):
            raise Fail(f"empty name in list '{word}'")
        self.pos += 1
        return items

    def done(self) -> bool:
        return self.pos >= len(self.words)

    def end(self) -> None:
        if not self.done():
            raise Fail(f"unexpected '{self.words[self.pos]}'")


MAX_REASON = 64
REASON = re.compile(rf"[A-Za-z0-9_.:/@+-]{{1,{MAX_REASON}}}")
REASON_CHARS = "letters, digits and _ . : / @ + -"


def reasons_list(w: Words) -> frozenset[str]:
    """A reason list; each reason a short word of REASON_CHARS (they are logged and shown)."""
    reasons = w.tags("reason")
    for reason in reasons:
        if REASON.fullmatch(reason) is None:
            shown = ascii(reason[:MAX_REASON] + ("..." if len(reason) > MAX_REASON else ""))
            raise Fail(f"bad reason {shown}: use {REASON_CHARS}, at most {MAX_REASON} characters")
    return frozenset(reasons)


LIST_COMMA = re.compile(r"\s*,\s*")
SECONDS = re.compile(r"^([0-9]{1,9}(?:\.[0-9]+)?)s?$", re.IGNORECASE)


def split_words(line: str) -> list[str]:
    """Trim, collapse whitespace and join `a, b` lists into `a,b`."""
    return LIST_COMMA.sub(",", line.strip()).split()


def seconds(word: str | None) -> float | None:
    match = SECONDS.match(word) if word is not None else None
    return float(match.group(1)) if match else None


def take_seconds(w: Words, what: str) -> float:
    value = seconds(w.peek())
    if value is None:
        raise Fail(f"{what}: a number of seconds expected")
    w.pos += 1
    return value


def is_number(word: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts superscripts, which int() refuses."""
    return word.isascii() and word.isdigit()


def integer(word: str | None, what: str, high: int) -> int:
    if word is None or not is_number(word) or len(word) > 9 or int(word) > high:
        raise Fail(f"{what}: an integer 0..{high} expected")
    return int(word)


def vs_clause(w: Words) -> tuple[str, ...] | None:
    """`[on|for|in] vs V1,V2`, if present."""
    if w.at("on", "for", "in") and w.peek(1) == "vs":
        w.pos += 1
    if w.accept("vs"):
        return w.tags("vs")
    return None
