"""kill -9 of a process in the middle of save() never corrupts the database or splits a save."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ipvswm.engine.state import StateSnapshot
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import ServiceKey
from ipvswm.store import Store

BATCH = 40  # pairs written by every save, so a kill often lands inside a transaction

# Save number i sets the counter pair to i, replaces batch i-1 by batch i, and moves the host's
# reason and the managed service along: every row of a consistent database says the same i.
WRITER = f"""
import sys
from ipvswm.engine.state import HostState, PairState, StateChanges
from ipvswm.kernel.table import Protocol, ServiceKey
from ipvswm.store import Store

store = Store(sys.argv[1])
counter = store.load().pairs.get(("c", "counter"))
i = 0 if counter is None else counter.weight
print("start", i, flush=True)
while True:
    i += 1
    new = PairState(weight=i, check_cause="x" * 50)
    pairs = {{("b", f"p{{i}}-{{j}}"): new for j in range({BATCH})}}
    pairs.update({{("b", f"p{{i - 1}}-{{j}}"): None for j in range({BATCH})}})
    pairs[("c", "counter")] = PairState(weight=i, reasons=frozenset({{f"r{{i}}"}}))
    store.save(StateChanges(
        hosts={{"h": HostState(frozenset({{f"r{{i}}"}}))}},
        pairs=pairs,
        managed_added=frozenset({{ServiceKey(Protocol.TCP, "192.0.2.1", i)}}),
        managed_removed=frozenset({{ServiceKey(Protocol.TCP, "192.0.2.1", i - 1)}}),
    ))
    print(i, flush=True)
"""


def committed(snapshot: StateSnapshot) -> int:
    """The number of the last save in the database, after checking all rows agree on it."""
    counter = snapshot.pairs.get(("c", "counter"))
    if counter is None:
        assert snapshot == StateSnapshot()
        return 0
    i = counter.weight
    assert counter.reasons == {f"r{i}"}
    batch = {key: pair for key, pair in snapshot.pairs.items() if key[0] == "b"}
    assert set(batch) == {("b", f"p{i}-{j}") for j in range(BATCH)}
    assert all(pair.weight == i for pair in batch.values())
    assert snapshot.hosts["h"].reasons == {f"r{i}"}
    assert snapshot.managed == {ServiceKey(Protocol.TCP, "192.0.2.1", i)}
    return i


@pytest.mark.integration
def test_kill_9_during_saves_keeps_a_consistent_prefix(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acknowledged = 0
    for round_no in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, db], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        # Round 0 kills at once (possibly while the database is being created); others after
        # a random number of acknowledged saves, while the child keeps writing.
        wanted = 0 if round_no == 0 else rng.randint(1, 60)
        seen = 0
        while seen < wanted:
            line = child.stdout.readline()
            assert line, f"writer died early (exit {child.poll()})"
            if line.startswith("start"):
                assert int(line.split()[1]) >= acknowledged
                continue
            acknowledged = int(line)
            seen += 1
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()  # lines printed before the kill were acknowledged saves
        child.wait()
        child.stdout.close()
        for line in rest.splitlines():
            if not line.startswith("start"):
                acknowledged = int(line)
        assert child.returncode == -signal.SIGKILL
        with Store(db) as store:
            last = committed(store.load())
        # Every acknowledged save is there; at most the one being written when killed is extra.
        assert acknowledged <= last <= acknowledged + 1, (round_no, acknowledged, last)
        acknowledged = last
    assert acknowledged > 0
