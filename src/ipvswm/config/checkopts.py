"""Text values of the check options (`send=`, `expect=`, `header=`, `body=`) (SPEC §2.2, §3).

VS options are separated by commas and whitespace, so a text value writes a comma, a space or a
percent sign as a `%XX` escape (see `decode_text`).
"""

from __future__ import annotations

import re

HTTP_METHODS = ("GET", "HEAD")
_PERCENT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
# RFC 9110 token characters: what a header name may be made of.
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers that frame the check's own exchange (one request, then close): never replaced.
FRAMING_HEADERS = frozenset({"connection", "content-length", "transfer-encoding"})


def decode_text(text: str) -> str:
    """A text value with `%XX` escapes decoded (UTF-8): how a comma, space or `%` is written.

    VS options are separated by commas and whitespace, so a value holding one of them writes it
    as `%2C` (comma), `%20` (space) or `%25` (percent); any other byte may be escaped the same
    way (e.g. `%0D%0A`). A `%` not followed by two hex digits is an error, not taken literally.
    """
    if "%" not in text:
        return text
    if text.count("%") != len(_PERCENT_RE.findall(text)):
        raise ValueError("'%' must start an escape like %20 (space), %2C (comma) or %25 (percent)")
    raw = bytearray()
    last = 0
    for match in _PERCENT_RE.finditer(text):
        raw += text[last : match.start()].encode()
        raw.append(int(match[1], 16))
        last = match.end()
    raw += text[last:].encode()
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ValueError("the %XX escapes do not decode as UTF-8") from None


def parse_match_text(text: str) -> str:
    """Non-empty text (a line to send, a body to find), `%XX`-decoded (see `decode_text`)."""
    value = decode_text(text)
    if not value:
        raise ValueError("expected some text (%XX escapes for commas, spaces and '%')")
    return value


def parse_http_method(text: str) -> str:
    """The HTTP request method of a check: GET or HEAD."""
    word = text.upper()
    if word not in HTTP_METHODS:
        raise ValueError("expected GET or HEAD")
    return word


def parse_header(text: str) -> tuple[str, str]:
    """An extra request header `Name:Value` (value `%XX`-decoded, leading spaces dropped)."""
    name, colon, value = text.partition(":")
    if not colon or _TOKEN_RE.fullmatch(name) is None:
        raise ValueError("expected Name:Value with a header name of letters, digits and '-'")
    if name.lower() in FRAMING_HEADERS:
        raise ValueError(f"header {name} is the check's own (one request, then close)")
    value = decode_text(value).lstrip(" \t")
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header value may not hold CR, LF or NUL")
    return name, value
