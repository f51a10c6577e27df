"""Issue 15 item 4 and 13: the man page is generated from `--help`'s parser and stays in sync; the
bash completion completes; the manual exists where the README points."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ipvswm.cli import build_parser
from ipvswm.manpage import render

REPO = Path(__file__).resolve().parents[2]


def test_man_page_is_in_sync_with_help() -> None:
    page = (REPO / "docs" / "ipvswm.8").read_text(encoding="utf-8")
    assert page == render(build_parser()), "run: python -m ipvswm.manpage > docs/ipvswm.8"
    for word in ("check\\-config", "\\-\\-pid\\-file", "\\-\\-backend", "top", "EXIT STATUS"):
        assert word in page


def test_readme_points_into_docs_not_outside_the_repo() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "../shared/" not in readme and "SPEC.md" not in readme
    for page in ("configuration.md", "console.md", "operations.md"):
        assert f"docs/{page}" in readme
        assert (REPO / "docs" / page).exists()


def test_configuration_explains_where_the_db_lives() -> None:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "Where the DB lives" in text and "tmpfs" in text and "reboot" in text
    example = (REPO / "contrib" / "ipvs-weightman.conf.example").read_text(encoding="utf-8")
    assert "docs/configuration.md" in example


def complete(line: str, config: Path) -> list[str]:
    words = line.split(" ")
    script = (
        f"source {REPO / 'contrib' / 'bash-completion' / 'ipvswm'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n_ipvswm\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    )
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=config.parent,
    )
    return [w for w in done.stdout.split("\n") if w]


def test_bash_completion(tmp_path: Path) -> None:
    config = tmp_path / "c.conf"
    # No console anywhere (TCP off, a socket path nobody listens on): tags come from the file
    # even while some other daemon on this machine answers on the default port.
    config.write_text(
        f"Management.Socket.Port=0\nManagement.Socket.Path={tmp_path / 'none.sock'}\n"
        "Check.Interval=2\n! www 192.0.2.1:80 /\n! api 192.0.2.2:80 /\n"
        "web1 192.0.2.10 www=1\nweb2 192.0.2.11 api=1\n"
    )
    assert "check-config" in complete("ipvswm ch", config)
    assert set(complete("ipvswm ", config)) >= {"run", "ctl", "top", "dump", "console"}
    c = f"-c {config}"
    assert complete(f"ipvswm ctl {c} set host ", config) == ["web1", "web2"]
    assert complete(f"ipvswm ctl {c} show vs ", config) == ["www", "api"]
    assert "show" in complete(f"ipvswm ctl {c} sh", config)
    assert complete("ipvswm run --backend n", config) == ["netlink"]


@pytest.mark.parametrize("page", ["configuration.md", "console.md", "operations.md"])
def test_docs_pages_name_what_exists(page: str) -> None:
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    if page == "configuration.md":
        from ipvswm.config.options import VS_OPTIONS

        for option in VS_OPTIONS:
            assert f"`{option}" in text, option
    if page == "console.md":
        assert "Combined.TStatus" in text and "| 3 |" in text
