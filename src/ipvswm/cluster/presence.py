"""A director's presence in the store, a second one under its name, and the metrics (issue 12).

Each director keeps, on one lease renewed every `LEASE_TTL`/3 s, its member key `member/NODE`
(what `show cluster` lists) and an instance key `instance/NODE/LEASE` (who it is: pid, host
name, start time). Two directors with the same `Cluster.Node` write the same member key, so that
key cannot tell them apart; their instance keys differ by lease. Each renewal reads the instance
keys of this director's name: another one that is alive is a duplicate. A left-over instance of
this very process (an expired lease) or of a dead process on this host (a crash just before a
restart: its lease lasts up to `LEASE_TTL`) is not.

While a duplicate exists the adapter refuses shared changes: each director takes the changes made
under its own name for its own, already applied, so a change made by its twin would be applied
on neither of them. It is logged once per episode, shown in `show cluster` and in the metric
`ipvswm_cluster_duplicate_node`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from prometheus_client import CollectorRegistry
from prometheus_client import Gauge

from ipvswm.cluster import keys
from ipvswm.cluster.etcd import EtcdClient
from ipvswm.cluster.etcd import EtcdError
from ipvswm.cluster.etcd import Put

log = logging.getLogger("ipvswm.cluster.adapter")

LEASE_TTL = 10  # a director that stops renewing is gone from `show cluster` after this long
INSTANCE = "instance/"


@dataclass(slots=True)
class Member:
    """A director seen in the store."""

    node: str
    since: float | None
    present: bool = True
    seen: float = field(default_factory=time.time)


class ClusterGauges:
    """The store's state and the propagation lag, on the daemon's metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "ipvswm_cluster_store_up", "1 if the cluster store answers.", registry=registry
        )
        self.revision = Gauge(
            "ipvswm_cluster_revision", "Store revision this director is at.", registry=registry
        )
        self.lag = Gauge(
            "ipvswm_cluster_propagation_lag_seconds",
            "Time from a command on another director to its application here (last one).",
            registry=registry,
        )
        self.members = Gauge(
            "ipvswm_cluster_members", "Directors present in the store.", registry=registry
        )
        self.duplicate = Gauge(
            "ipvswm_cluster_duplicate_node",
            "1 while another director uses this director's Cluster.Node.",
            registry=registry,
        )


def member_of(node: str, value: str) -> Member:
    """A member key's value, read."""
    data = keys._load(value)
    since = data.get("since")
    return Member(node, float(since) if isinstance(since, int | float) else None)


class Presence:
    """Keeps this director's member and instance keys alive; finds a twin under its name."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        node: str,
        lost: Callable[[str], None],
        changed: Callable[[], None],
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.node = node
        self.lease = 0
        self.duplicate: str | None = None  # the other director's description, while it exists
        self._lost = lost
        self._changed = changed
        self._host = socket.gethostname()
        self._since = round(time.time(), 3)

    def _value(self) -> str:
        me = {"node": self.node, "pid": os.getpid(), "host": self._host, "since": self._since}
        return json.dumps(me, sort_keys=True)

    async def run(self) -> None:
        """Until cancelled: grant or renew the lease, then look for a twin."""
        while True:
            try:
                if not self.lease:
                    self.lease = await self.client.grant(LEASE_TTL)
                    member = f"{self.prefix}{keys.MEMBER}{self.node}"
                    instance = f"{self.prefix}{INSTANCE}{self.node}/{self.lease:x}"
                    value = self._value()
                    await self.client.txn(
                        [Put(member, value, self.lease), Put(instance, value, self.lease)]
                    )
                elif await self.client.keepalive(self.lease) <= 0:
                    self.lease = 0  # expired while we were away: a new one at once
                    continue
                await self.look()
            except EtcdError as exc:
                self.lease = 0 if "lease not found" in str(exc) else self.lease
                self._lost(str(exc))
            await asyncio.sleep(LEASE_TTL / 3)

    async def look(self) -> None:
        """Read the instance keys of this name: a live other one is a duplicate."""
        base = f"{self.prefix}{INSTANCE}{self.node}/"
        _, found = await self.client.read_prefix(base)
        mine = f"{base}{self.lease:x}"
        others = [
            _describe(value)
            for key, value in sorted(found.items())
            if key != mine and not self._left_over(value)
        ]
        self._set(others[0] if others else None)

    def _left_over(self, value: str) -> bool:
        """An instance of this process (an old lease), or of a dead process on this host."""
        data = keys._load(value)
        pid = data.get("pid")
        if data.get("host") != self._host or not isinstance(pid, int):
            return False
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _set(self, other: str | None) -> None:
        if other == self.duplicate:
            return
        was, self.duplicate = self.duplicate, other
        if other is not None and was is None:
            log.error(
                "cluster: another director also uses Cluster.Node=%s (%s): shared admin"
                " commands are refused on this director until one of them is renamed (a change"
                " made under this name would be taken for this director's own and not applied)",
                self.node,
                other,
            )
        elif other is None:
            log.warning(
                "cluster: no other director uses Cluster.Node=%s any more: shared admin commands"
                " accepted again",
                self.node,
            )
        self._changed()


def _describe(value: str) -> str:
    data = keys._load(value)
    since = data.get("since")
    started = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        if isinstance(since, int | float)
        else "?"
    )
    return f"pid {data.get('pid', '?')} on host {data.get('host', '?')}, started {started}"
