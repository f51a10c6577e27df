"""Issue 15 item 9: the names of a config are resolved concurrently (bounded), so six dead names
cost one resolver timeout, not six. Shown without timing: each lookup waits at a barrier that only
opens when all six are in flight at once, so one-at-a-time lookups cannot pass."""

from __future__ import annotations

import threading

from ipvswm.config.parser import parse_text

NAMES = [f"web{i}.example.test" for i in range(6)]


def test_six_names_are_looked_up_at_once() -> None:
    barrier = threading.Barrier(len(NAMES), timeout=20)
    seen: list[str] = []

    def resolver(name: str) -> list[str]:
        seen.append(name)
        barrier.wait()  # BrokenBarrierError (a failed lookup) unless all six wait together
        return [f"192.0.2.{10 + NAMES.index(name)}"]

    text = "! www 192.0.2.1:80 /\n" + "".join(
        f"h{i} {name} www=1\n" for i, name in enumerate(NAMES)
    )
    result = parse_text(text, resolver=resolver)
    assert result.errors == (), result.errors
    assert result.config is not None
    assert [h.address for h in result.config.hosts] == [f"192.0.2.{10 + i}" for i in range(6)]
    assert sorted(seen) == sorted(NAMES)  # each name once: the cache still holds
