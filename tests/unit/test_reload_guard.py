"""Reload safety (issue 10 items 1, 3, 4): the refusal verdict, safe reads, capped error lists."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ipvswm.cli import main
from ipvswm.config.guard import FORCE_HINT
from ipvswm.config.guard import problems
from ipvswm.config.guard import refusal
from ipvswm.config.guard import removal
from ipvswm.config.model import Config
from ipvswm.config.parser import MAX_ERRORS
from ipvswm.config.parser import ParseResult
from ipvswm.config.parser import parse_file
from ipvswm.config.parser import parse_text
from ipvswm.config.reader import MAX_CONFIG_BYTES

BASE = """\
! www 192.0.2.1:80 /health
! api 192.0.2.2:443 tcp://
web1 127.0.0.2 www=10 api=5
web2 127.0.0.3 www=10
web3 127.0.0.4 www=10
web4 127.0.0.5 www=10
"""


def config(text: str) -> Config:
    result = parse_text(text, "test.conf", lambda name: [])
    assert result.config is not None, result.errors
    return result.config


def test_a_file_without_any_virtual_service_is_refused() -> None:
    old = config(BASE)
    why = refusal(old, config("Check.Interval=2\n"))
    assert why is not None
    assert "every virtual service" in why and "www, api" in why and "5 of 5 pair(s)" in why
    assert why.endswith(FORCE_HINT)
    assert "config reload force" in why


def test_removing_more_than_the_share_of_pairs_is_refused_and_at_most_it_is_not() -> None:
    old = config(BASE)  # 5 pairs
    three_gone = config(
        BASE.replace("web2 127.0.0.3 www=10\nweb3 127.0.0.4 www=10\n", "").replace(
            "web4 127.0.0.5 www=10\n", ""
        )
    )
    why = refusal(old, three_gone)
    assert why is not None and "3 of 5 pairs (60%" in why and "www/web2" in why
    two_gone = config(BASE.replace("web3 127.0.0.4 www=10\nweb4 127.0.0.5 www=10\n", ""))
    assert refusal(old, two_gone) is None  # 40% is not more than 0.5


def test_the_lower_of_the_two_files_limits_applies() -> None:
    old = config(BASE)
    text = BASE.replace("web3 127.0.0.4 www=10\nweb4 127.0.0.5 www=10\n", "")
    assert refusal(old, config("Config.MaxRemovedShare=0.2\n" + text)) is not None
    raised = config("Config.MaxRemovedShare=1\n" + BASE)
    assert refusal(raised, config(text)) is None
    # a file raising the limit cannot lift it for itself (3 of 5 pairs removed)
    cut = text.replace("web2 127.0.0.3 www=10\n", "")
    assert refusal(old, config("Config.MaxRemovedShare=1\n" + cut)) is not None
    assert refusal(raised, config("Config.MaxRemovedShare=1\n" + cut)) is None


def test_a_replaced_virtual_service_removes_its_pairs() -> None:
    old = config(BASE)
    moved = config(BASE.replace("192.0.2.1:80", "192.0.2.9:80"))
    gone = removal(old, moved)
    assert gone.vss == ("www",)
    assert len(gone.pairs) == 4
    assert refusal(old, moved) is not None
    # every VS replaced is "every virtual service" even though the file still has two
    both = config(BASE.replace("192.0.2.1:80", "192.0.2.9:80").replace(":443", ":444"))
    why = refusal(old, both)
    assert why is not None and "every virtual service:" in why


def test_adding_and_changing_weights_is_never_refused() -> None:
    old = config(BASE)
    more = config(BASE.replace("www=10", "www=20") + "web5 127.0.0.6 www=1\n")
    assert refusal(old, more) is None
    assert refusal(config("Check.Interval=2\n"), config(BASE)) is None


def test_problems_names_a_file_without_virtual_service() -> None:
    assert problems(config(BASE)) == []
    (line,) = problems(config("Check.Interval=2\n"))
    assert "no virtual service" in line


def test_check_config_reports_a_globals_only_file_as_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "globals.conf"
    path.write_text("Check.Interval=2\n")
    assert main(["check-config", "-c", str(path)]) == 1
    out = capsys.readouterr().out
    assert "no virtual service" in out and "NOT valid" in out


# --- item 3 and 4: what is read ------------------------------------------------------------


def parse_in_thread(path: Path) -> ParseResult:
    """parse_file in a thread, failing (not hanging) if it does not return: a FIFO blocked it."""
    results: list[ParseResult] = []
    worker = threading.Thread(target=lambda: results.append(parse_file(str(path))), daemon=True)
    worker.start()
    worker.join(20)  # generous: it returns at once; before the fix it never returned
    assert results, f"parse_file({path}) blocked"
    return results[0]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "conf.fifo"
    os.mkfifo(fifo)
    result = parse_in_thread(fifo)
    assert result.config is None
    assert "it is a FIFO, not a regular file" in str(result.errors[0])


def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.conf"
    link.symlink_to("/dev/zero")
    result = parse_in_thread(link)
    assert result.config is None
    assert "character device, not a regular file" in str(result.errors[0])


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    real = tmp_path / "real.conf"
    real.write_text("Check.Interval=2\n! www 192.0.2.1:80 /health\n")
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    assert parse_file(str(link)).config is not None


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.conf"
    with open(big, "wb") as file:
        file.truncate(MAX_CONFIG_BYTES + 1)  # sparse: nothing is written, nothing need be read
    result = parse_file(str(big))
    assert result.config is None
    (error,) = result.errors
    assert "config file too large" in str(error) and "16 MiB" in str(error)


def test_errors_are_capped_with_a_count_of_the_rest() -> None:
    lines = ["! www 192.0.2.1:80 /health"] + [f"garbage{i}" for i in range(5000)]
    lines.insert(3, "web1 127.0.0.2 nosuchvs=1")  # found in a later pass, at an early line
    result = parse_text("\n".join(lines) + "\n", "bad.conf", lambda name: [])
    assert result.config is None
    assert len(result.errors) == MAX_ERRORS
    assert result.more == 5001 - MAX_ERRORS
    assert result.error_count() == 5001
    assert [e.line for e in result.errors] == sorted(e.line for e in result.errors)
    assert result.errors[0].line == 2 and result.errors[2].line == 4
    assert "nosuchvs" in result.errors[2].message
    messages = result.messages()
    assert len(messages) == MAX_ERRORS + 1
    assert messages[-1].startswith(f"... and {5001 - MAX_ERRORS} more error(s)")


def test_check_config_prints_at_most_the_capped_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "garbage.conf"
    path.write_text("garbage\n" * 20000)
    assert main(["check-config", "-c", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == MAX_ERRORS + 2
    assert out[-1].endswith("20000 error(s), configuration is NOT valid")


def test_names_are_not_resolved_once_the_error_cap_is_reached() -> None:
    looked_up: list[str] = []

    def resolver(name: str) -> list[str]:
        looked_up.append(name)
        return [f"192.0.2.{len(looked_up)}"]

    lines = [f"bad{i}" for i in range(MAX_ERRORS)] + [f"web{i} host{i}.example" for i in range(50)]
    result = parse_text("\n".join(lines) + "\n", "bad.conf", resolver)
    assert result.config is None and result.more == 0  # host lines are valid apart from names
    assert len(looked_up) == 50
    looked_up.clear()
    lines.insert(0, "one-error-too-many")
    result = parse_text("\n".join(lines) + "\n", "bad.conf", resolver)
    assert result.more == 51 and looked_up == []
