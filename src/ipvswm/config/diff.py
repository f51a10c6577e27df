"""What applying a new config would change, in operator words (`config diff`, reload logs)."""

from __future__ import annotations

from ipvswm.config.agent import agent_polls
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Pair

# Options read once at start: a reload that changes them says a restart is needed.
RESTART_OPTIONS = (
    "management_socket_ip",
    "management_socket_port",
    "management_socket_path",
    "management_fifo_path",
    "db",
    "ipvs_backend",
    "ipvsadm",
    "ipvs_timeout",
    "metrics_listen",
    "cluster_etcd",
    "cluster_name",
    "cluster_node",
    "cluster_etcd_cacert",
    "cluster_etcd_cert",
    "cluster_etcd_key",
    "cluster_etcd_user",
    "cluster_etcd_password_file",
)


def describe_diff(old: Config, new: Config) -> list[str]:
    """One line per change between two configs; empty when nothing changed."""
    if old == new:
        return []
    lines: list[str] = []
    old_vs = {vs.tag: vs for vs in old.services}
    new_vs = {vs.tag: vs for vs in new.services}
    for tag in sorted(new_vs.keys() - old_vs.keys()):
        vs = new_vs[tag]
        lines.append(f"add vs {tag} {vs.proto.value}:{vs.address}:{vs.port}")
    for tag in sorted(old_vs.keys() - new_vs.keys()):
        lines.append(f"remove vs {tag}")
    for tag in sorted(old_vs.keys() & new_vs.keys()):
        a, b = old_vs[tag], new_vs[tag]
        if (a.proto, a.address, a.port) != (b.proto, b.address, b.port):
            lines.append(
                f"replace vs {tag}: {a.proto.value}:{a.address}:{a.port} -> "
                f"{b.proto.value}:{b.address}:{b.port}"
            )
            continue
        if a.check != b.check:
            lines.append(f"vs {tag}: check {a.check.describe()} -> {b.check.describe()}")
        for name in ("rs_port", "scheduler", "method", "persistent", "email", "sorry_server"):
            before, after = getattr(a, name), getattr(b, name)
            if before != after:
                lines.append(f"vs {tag}: {name} {_show(before)} -> {_show(after)}")
        if a.depool_threshold != b.depool_threshold:
            lines.append(
                f"vs {tag}: depool_threshold {a.depool_threshold:g} -> {b.depool_threshold:g}"
            )

    old_hosts = {h.tag: h for h in old.hosts}
    new_hosts = {h.tag: h for h in new.hosts}
    for tag in sorted(new_hosts.keys() - old_hosts.keys()):
        lines.append(f"add host {tag} {new_hosts[tag].address}")
    for tag in sorted(old_hosts.keys() - new_hosts.keys()):
        lines.append(f"remove host {tag}")
    # Only the pairs of a host or VS that changed can differ: at 50,000 pairs a reload that
    # changes one weight compares one host's pairs, not every pair.
    changed_vss = {t for t in old_vs.keys() & new_vs.keys() if old_vs[t] != new_vs[t]}
    changed_vss |= old_vs.keys() ^ new_vs.keys()
    suspects = {
        tag
        for tag in old_hosts.keys() | new_hosts.keys()
        if old_hosts.get(tag) != new_hosts.get(tag)
    }
    if changed_vss:
        for entry in (*old.hosts, *new.hosts):
            if any(vs in changed_vss for vs, _ in entry.weights):
                suspects.add(entry.tag)
    old_pairs = {(p.vs, p.host): p for p in old.pairs() if p.host in suspects}
    new_pairs = {(p.vs, p.host): p for p in new.pairs() if p.host in suspects}
    for vs_tag, host in sorted(new_pairs.keys() - old_pairs.keys()):
        weight = new_pairs[(vs_tag, host)].weight
        lines.append(f"add host {host} to vs {vs_tag} (weight {weight})")
    for vs_tag, host in sorted(old_pairs.keys() - new_pairs.keys()):
        lines.append(f"remove host {host} from vs {vs_tag}")
    for key in sorted(old_pairs.keys() & new_pairs.keys()):
        a_pair, b_pair = old_pairs[key], new_pairs[key]
        if (a_pair.address, a_pair.port) != (b_pair.address, b_pair.port):
            lines.append(
                f"vs {key[0]} host {key[1]}: address {a_pair.address}:{a_pair.port} -> "
                f"{b_pair.address}:{b_pair.port}"
            )
        if a_pair.weight != b_pair.weight:
            lines.append(f"vs {key[0]} host {key[1]}: weight {a_pair.weight} -> {b_pair.weight}")
        if (a_pair.agent, a_pair.agent_interval) != (b_pair.agent, b_pair.agent_interval):
            lines.append(f"vs {key[0]} host {key[1]}: {_agent(a_pair)} -> {_agent(b_pair)}")

    old_checks, new_checks = old.check_targets(), new.check_targets()
    started, stopped = new_checks - old_checks, old_checks - new_checks
    if started or stopped:
        lines.append(f"checkers: {len(started)} to start, {len(stopped)} to stop")
    old_agents, new_agents = set(agent_polls(old).values()), set(agent_polls(new).values())
    if old_agents != new_agents:
        begun, ended = len(new_agents - old_agents), len(old_agents - new_agents)
        lines.append(f"agent polls: {begun} to start, {ended} to stop")
    lines.extend(_option_changes(old.options, new.options))
    return lines


def _option_changes(old: GlobalOptions, new: GlobalOptions) -> list[str]:
    lines = []
    for name in GlobalOptions.__dataclass_fields__:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            note = " (takes effect after a restart)" if name in RESTART_OPTIONS else ""
            if name == "management_socket_token":  # a secret: never in a reply or the log
                lines.append(f"option {name}: changed{note}")
                continue
            lines.append(f"option {name}: {_show(before)} -> {_show(after)}{note}")
    return lines


def _agent(pair: Pair) -> str:
    if pair.agent is None:
        return "no agent"
    return f"{pair.agent} every {pair.agent_interval:g}s"


def _show(value: object) -> str:
    if hasattr(value, "value"):
        return str(value.value)
    return "''" if value == "" else str(value)
