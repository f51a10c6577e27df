"""The cluster store adapter: the one module that talks to etcd for the daemon (issue 12).

It has one job: keep this director's belief about the shared state equal to the store's, and hand
every difference to the daemon's one queue as a `SharedUpdate` of admin events. It never touches
the engine. The loop: a full read of the prefix at a revision, a diff against what the director
believed (kept in the local DB), then a watch from the next revision; when the store is lost, the
same again on reconnect, so a deletion missed meanwhile is not missed. Presence is a member key
on a lease kept alive in the background. Admin commands are written through `commit` (one
transaction) before the daemon commits them locally and acknowledges them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from ipvswm.answers import Refused
from ipvswm.cluster import keys
from ipvswm.cluster.connect import ClusterStartError
from ipvswm.cluster.connect import client_for
from ipvswm.cluster.etcd import Delete
from ipvswm.cluster.etcd import EtcdAuthError
from ipvswm.cluster.etcd import EtcdCompacted
from ipvswm.cluster.etcd import EtcdError
from ipvswm.cluster.etcd import Op
from ipvswm.cluster.etcd import Put
from ipvswm.cluster.etcd import WatchEvent
from ipvswm.cluster.memory import Memory
from ipvswm.cluster.presence import ClusterGauges
from ipvswm.cluster.presence import Member
from ipvswm.cluster.presence import Presence
from ipvswm.cluster.presence import member_of
from ipvswm.cluster.sharing import forget_scope
from ipvswm.cluster.sharing import local_marks
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AdminEvent

__all__ = ["ClusterStartError", "ClusterStore", "SharedUpdate"]

log = logging.getLogger(__name__)

RETRY_MAX = 5.0
START_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class SharedUpdate:
    """Admin events learnt from the store, and the shared keys that now hold (for the memory)."""

    changes: list[keys.SharedChange]
    puts: dict[str, str]
    deletes: set[str]
    revision: int
    full: bool = False  # a full read: `puts` is the whole shared state


class ClusterStore:
    """Shares admin state through etcd for one director (`Cluster.Node`) of `Cluster.Name`."""

    def __init__(
        self,
        options: GlobalOptions,
        memory: Memory,
        deliver: Callable[[SharedUpdate], None],
        *,
        registry: CollectorRegistry | None = None,
        alert: Callable[[str, str], None] | None = None,
    ) -> None:
        self.node = options.cluster_node or socket.gethostname()
        self.name = options.cluster_name
        self.prefix = keys.cluster_prefix(self.name)
        self.client = client_for(options)
        self.memory = memory
        belief = memory.load(self.prefix)
        self.revision = belief.revision
        self.shared = belief.shared  # what this director believes (and has applied)
        self.local = belief.local
        self.members: dict[str, Member] = {}
        self.up = False
        self.cause = "not connected yet"
        self._lost_logged = False
        self._deliver = deliver
        self._alert = alert
        self._gauges = ClusterGauges(registry) if registry is not None else None
        self._pending: list[SharedUpdate] = []
        self.presence = Presence(self.client, self.prefix, self.node, self._lost, self._publish)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # The last admin change learnt from another director, and when it was learnt (for
        # /status and the dashboard).
        self.last_peer: keys.SharedChange | None = None
        self.last_peer_learnt: float | None = None

    # --- start, run, close ----------------------------------------------------------------

    async def start(self) -> SharedUpdate | None:
        """One catch-up before the daemon's first kernel change; None if the store is unreachable.

        ClusterStartError on a refusal that retrying cannot cure (wrong user or password).
        """
        try:
            return await asyncio.wait_for(self._read_all(), START_TIMEOUT)
        except EtcdAuthError as exc:
            raise ClusterStartError(str(exc)) from exc
        except (EtcdError, TimeoutError) as exc:
            self._lost(str(exc) or "timed out")
            return None

    def run(self) -> None:
        """Start the watch and the presence keep-alive in the background."""
        self._tasks.append(asyncio.create_task(self._watch_loop(), name="cluster-watch"))
        self._tasks.append(asyncio.create_task(self.presence.run(), name="cluster-presence"))

    async def close(self) -> None:
        """Stop; revoke the lease so the others see this director leave at once."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.presence.lease and self.up:
            with contextlib.suppress(EtcdError, TimeoutError):
                await asyncio.wait_for(self.client.revoke(self.presence.lease), 1.0)
        await self.client.close()
        self.memory.close()

    async def _read_all(self) -> SharedUpdate:
        revision, values = await self.client.read_prefix(self.prefix)
        shared: dict[str, str] = {}
        members: dict[str, Member] = {}
        for key, value in values.items():
            rel = key[len(self.prefix) :]
            if rel.startswith(keys.MEMBER):
                members[rel[len(keys.MEMBER) :]] = member_of(rel[len(keys.MEMBER) :], value)
            elif rel.startswith((keys.HOST, keys.FORGET)):
                shared[rel] = value
        changes = keys.diff(self.shared, shared)
        deletes = set(self.shared) - set(shared)
        self._note_peers(changes)
        self.shared = shared
        self.revision = revision
        for node, member in self.members.items():
            if node not in members and member.present:
                member.present = False
                members[node] = member
        self.members = members
        self._regained(len(changes))
        return SharedUpdate(changes, dict(shared), deletes, revision, full=True)

    async def _watch_loop(self) -> None:
        delay = 0.2
        need_read = not self.up
        while not self._closing:
            try:
                if need_read:
                    self._deliver(await self._read_all())
                    need_read = False
                delay = 0.2
                async for events in self.client.watch(self.prefix, self.revision + 1):
                    update = self._on_events(events)
                    if update is not None:
                        self._deliver(update)
            except EtcdCompacted as exc:
                log.warning("cluster store: %s; reading everything again", exc)
            except EtcdError as exc:
                self._lost(str(exc))
            except Exception:  # a bug here must not stop the daemon: log, read again later
                log.exception("cluster store: internal error in the watch; reading again")
            need_read = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _on_events(self, events: list[WatchEvent]) -> SharedUpdate | None:
        """Fold a watch response into the belief; the changes made by other directors."""
        old: dict[str, str] = {}
        new: dict[str, str] = {}
        touched_hosts: set[str] = set()
        for event in events:
            rel = event.key[len(self.prefix) :]
            self.revision = max(self.revision, event.revision)
            if rel.startswith(keys.MEMBER):
                self._on_member(rel[len(keys.MEMBER) :], event.value)
            elif rel.startswith((keys.HOST, keys.FORGET)):
                touched_hosts.add(rel.split("/")[1] if rel.count("/") >= 1 else "")
        if not touched_hosts:
            self._publish()
            return None
        bases = tuple(keys.host_base(h) for h in touched_hosts)
        forgets = {keys.forget_key(h) for h in touched_hosts}
        old = {k: v for k, v in self.shared.items() if k.startswith(bases) or k in forgets}
        puts: dict[str, str] = {}
        deletes: set[str] = set()
        for event in events:
            rel = event.key[len(self.prefix) :]
            if not rel.startswith((keys.HOST, keys.FORGET)):
                continue
            if event.value is None:
                self.shared.pop(rel, None)
                puts.pop(rel, None)
                deletes.add(rel)
            else:
                self.shared[rel] = event.value
                puts[rel] = event.value
                deletes.discard(rel)
        new = {k: v for k, v in self.shared.items() if k.startswith(bases) or k in forgets}
        # This director's own commands were applied (and acknowledged) before they got here.
        changes = [c for c in keys.diff(old, new) if c.node != self.node]
        self._note_peers(changes)
        self._publish()
        return SharedUpdate(changes, puts, deletes, self.revision)

    def _note_peers(self, changes: list[keys.SharedChange]) -> None:
        from_peers = [c for c in changes if c.node != self.node]
        if from_peers:
            self.last_peer = from_peers[-1]
            self.last_peer_learnt = time.time()

    def _on_member(self, node: str, value: str | None) -> None:
        if value is None:
            member = self.members.get(node)
            if member is not None and member.present:
                member.present = False
                member.seen = time.time()
                log.info("cluster: director %s left (its lease ended)", node)
        else:
            known = self.members.get(node)
            self.members[node] = member_of(node, value)
            if node != self.node and (known is None or not known.present):
                log.info("cluster: director %s present", node)

    # --- admin commands -------------------------------------------------------------------

    async def commit(
        self, event: AdminEvent, vss_of: Callable[[str], tuple[str, ...]]
    ) -> Refused | None:
        """Write an admin command to the store; None once committed, else the refusal."""
        return await self.commit_ops(keys.ops_for(event, self.node, time.time(), vss_of))

    async def commit_forget(self, host: str, config: Config, snap: StateSnapshot) -> Refused | None:
        """Share a `forget host H` typed here (nothing to share if the engine keeps nothing)."""
        share, vss = forget_scope(config, snap, host)
        if not share:
            return None
        return await self.commit_ops(keys.forget_ops(host, self.node, time.time(), vss))

    async def commit_ops(self, relative: list[Op]) -> Refused | None:
        """Commit a transaction of relative keys; None once committed, else the refusal."""
        if self.presence.duplicate is not None:
            return Refused(
                f"another director also uses Cluster.Node={self.node}"
                f" ({self.presence.duplicate}): nothing changed (rename one of them;"
                " add 'local' to change this director only)"
            )
        ops: list[Op] = [
            Put(self.prefix + op.key, op.value)
            if isinstance(op, Put)
            else Delete(self.prefix + op.key, op.prefix)
            for op in relative
        ]
        try:
            await self.client.txn(ops)
        except EtcdError as exc:
            self._lost(str(exc))
            return Refused(
                f"cluster store unreachable ({exc}): nothing changed"
                " (add 'local' to change this director only)"
            )
        self._forget_local(relative)
        return None

    def note_local(self, event: AdminEvent, vss_of: Callable[[str], tuple[str, ...]]) -> None:
        """A `local` command was applied: remember which shared keys differ here on purpose."""
        ops = keys.ops_for(event, self.node, time.time(), vss_of)
        written, deleted, prefixes = keys.touched_keys(ops)
        overrides = {k for k in written if k.endswith("/override")}
        cleared = {k for k in overrides if '"weight": null' in _value(ops, k)}
        gone = deleted | {k for k in self.local | set(self.shared) if k.startswith(tuple(prefixes))}
        local = (self.local - gone - cleared) | (written - cleared)
        # Removed (or reset) here while the store still has it: differs on purpose too.
        local |= {k for k in gone | cleared if k in self.shared}
        self._set_local(local)

    def _forget_local(self, ops: list[Op]) -> None:
        written, deleted, prefixes = keys.touched_keys(ops)
        local = {k for k in self.local - written - deleted if not k.startswith(tuple(prefixes))}
        if local != self.local:
            self._set_local(local)

    def _set_local(self, local: set[str]) -> None:
        self.local = local
        try:
            self.memory.save_local(local)
        except Exception as exc:
            log.error("cannot save the local-only marks: %s", exc)

    # --- for the owner --------------------------------------------------------------------

    def applied(self, update: SharedUpdate) -> None:
        """The owner applied `update`; it is saved with the next `persist`."""
        self._pending.append(update)

    def persist(self) -> None:
        """Save what was applied, after the engine's own commit of it."""
        pending, self._pending = self._pending, []
        for update in pending:
            try:
                self.memory.save(
                    self.prefix, update.revision, update.puts, update.deletes, full=update.full
                )
            except Exception as exc:
                log.error("cannot save the shared state: %s; the next catch-up redoes it", exc)

    def observe_lag(self, seconds: float) -> None:
        if self._gauges is not None:
            self._gauges.lag.set(max(seconds, 0.0))

    # --- state ----------------------------------------------------------------------------

    def _lost(self, cause: str) -> None:
        self.cause = cause
        was_up, self.up = self.up, False
        self._publish()
        if was_up or not self._lost_logged:
            self._lost_logged = True
            text = (
                f"cluster store unreachable ({cause}): checks and weights go on with the last"
                " known shared state; admin commands are refused unless 'local' is added"
            )
            log.error("%s", text)
            if self._alert is not None:
                self._alert(f"cluster '{self.name}' store unreachable", text)

    def _regained(self, caught_up: int) -> None:
        was_lost = self._lost_logged and not self.up
        self.up = True
        self.cause = ""
        self._publish()
        if was_lost:
            self._lost_logged = False
            text = (
                f"cluster store reachable again at {self.client.endpoint}, revision"
                f" {self.revision}: {caught_up} change(s) caught up"
            )
            log.warning("%s", text)
            if self._alert is not None:
                self._alert(f"cluster '{self.name}' store reachable again", text)
        else:
            log.info(
                "cluster store %s: revision %d, %d shared key(s), %d change(s) caught up",
                self.client.endpoint,
                self.revision,
                len(self.shared),
                caught_up,
            )

    def _publish(self) -> None:
        if self._gauges is not None:
            self._gauges.up.set(1 if self.up else 0)
            self._gauges.revision.set(self.revision)
            self._gauges.members.set(sum(1 for m in self.members.values() if m.present))
            self._gauges.duplicate.set(0 if self.presence.duplicate is None else 1)

    def view(self) -> dict[str, object]:
        """For `show cluster` and /status."""
        return {
            "name": self.name,
            "node": self.node,
            "store": "up" if self.up else f"unreachable ({self.cause})",
            "endpoint": self.client.endpoint,
            "revision": self.revision,
            "shared_keys": len(self.shared),
            "members": [
                {"node": m.node, "present": m.present, "since": m.since, "seen": m.seen}
                for m in sorted(self.members.values(), key=lambda m: m.node)
            ],
            "local": sorted(self.local),
            "local_marks": local_marks(self.local, self.shared),
            "duplicate": self.presence.duplicate,
        }


def _value(ops: list[Op], key: str) -> str:
    for op in ops:
        if isinstance(op, Put) and op.key == key:
            return op.value
    return ""
