"""A reload that only adds comments or blank lines is a no-op (issue 16 goal 4): line numbers
are for messages, not part of a VS's or host's identity."""

from __future__ import annotations

from ipvswm.config.diff import describe_diff
from ipvswm.config.parser import parse_text

BODY = "! www 192.0.2.1:80 /health\nweb1 127.0.0.10:80 www=10\nweb2 127.0.0.11:80 www=5\n"


def test_lines_shifted_by_a_comment_leave_the_config_equal() -> None:
    old = parse_text(BODY).config
    new = parse_text("# a comment\n\n" + BODY).config
    assert old is not None and new is not None
    assert new.services[0].line == old.services[0].line + 2  # still there, for messages
    assert new == old  # the daemon's reload short cut: nothing to do at any size
    assert describe_diff(old, new) == []


def test_a_changed_weight_is_still_a_change() -> None:
    old = parse_text(BODY).config
    new = parse_text("# a comment\n" + BODY.replace("www=5", "www=6")).config
    assert old is not None and new is not None
    assert new != old
    assert describe_diff(old, new)
