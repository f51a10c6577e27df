"""The configs shown to operators (README, contrib example) are valid."""

from __future__ import annotations

import re
from pathlib import Path

from ipvswm.config.parser import parse_text

ROOT = Path(__file__).resolve().parents[2]


def no_dns(name: str) -> list[str]:
    raise AssertionError(f"the example must not need a name lookup ({name})")


def test_readme_config_example_is_valid() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```ini\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    result = parse_text(block.group(1), "README.md", no_dns)
    assert result.errors == ()


def test_contrib_example_config_is_valid() -> None:
    path = ROOT / "contrib" / "ipvs-weightman.conf.example"
    result = parse_text(path.read_text(encoding="utf-8"), str(path), no_dns)
    assert result.errors == ()
