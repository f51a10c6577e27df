"""The option tables of the config: global `Key=value` keys and VS options (SPEC §2.1, §2.2).

Each key names its converter (`values.py`); the converters and the CHECK column forms
(`checkform.py`) stay importable from here, where the parser and the console find them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipvswm.config.checkopts import HTTP_METHODS
from ipvswm.config.checkopts import parse_header
from ipvswm.config.checkopts import parse_http_method
from ipvswm.config.checkopts import parse_match_text
from ipvswm.config.model import GlobalOptions
from ipvswm.config.values import MAX_PERSISTENT
from ipvswm.config.values import parse_backend
from ipvswm.config.values import parse_bool
from ipvswm.config.values import parse_cluster_word
from ipvswm.config.values import parse_delay
from ipvswm.config.values import parse_endpoint
from ipvswm.config.values import parse_endpoints
from ipvswm.config.values import parse_facility
from ipvswm.config.values import parse_fraction
from ipvswm.config.values import parse_host_tag
from ipvswm.config.values import parse_int
from ipvswm.config.values import parse_interval
from ipvswm.config.values import parse_ip
from ipvswm.config.values import parse_method
from ipvswm.config.values import parse_names
from ipvswm.config.values import parse_optional_ip
from ipvswm.config.values import parse_optional_tag
from ipvswm.config.values import parse_port
from ipvswm.config.values import parse_proto
from ipvswm.config.values import parse_scheduler
from ipvswm.config.values import parse_token
from ipvswm.config.values import plain_text
from ipvswm.config.values import show


@dataclass(frozen=True, slots=True)
class GlobalKey:
    """One `Key=value` option: its spelling in SPEC §2.1, its field and its converter."""

    key: str
    field: str
    convert: Callable[[str], Any]


def _g(key: str, field: str, convert: Callable[[str], Any]) -> GlobalKey:
    return GlobalKey(key, field, convert)


GLOBAL_KEYS: tuple[GlobalKey, ...] = (
    _g("Management.Socket.IP", "management_socket_ip", parse_ip),
    # 0 disables the TCP console (the Unix socket is then the only way in, besides the FIFO).
    _g("Management.Socket.Port", "management_socket_port", lambda v: parse_int(v, 0, 65535)),
    _g("Management.Socket.Path", "management_socket_path", plain_text),
    _g("Management.Fifo.Path", "management_fifo_path", plain_text),
    _g("Management.Socket.Token", "management_socket_token", parse_token),
    _g("Management.Socket.AllowUsers", "management_socket_allow_users", parse_names),
    _g("Management.Socket.AllowGroups", "management_socket_allow_groups", parse_names),
    _g("Config.Path", "config_path", plain_text),
    _g("Config.CheckPeriod", "config_check_period", parse_interval),
    _g("Config.AutoCheck", "config_auto_check", parse_bool),
    _g("Config.MaxRemovedShare", "config_max_removed_share", parse_fraction),
    _g("Config.ForgetAfter", "config_forget_after", parse_delay),
    _g("Log.Path", "log_path", plain_text),
    _g("Log.SysLog", "log_syslog", parse_bool),
    _g("Log.SysLog.Facility", "log_syslog_facility", parse_facility),
    _g("Log.StdErr", "log_stderr", parse_bool),
    _g("Log.Level", "log_level", lambda v: parse_int(v, 0)),
    _g("Ramping.TriggerTime", "ramping_trigger_time", parse_delay),
    _g("Ramping.Duration", "ramping_duration", parse_delay),
    _g("DB", "db", plain_text),
    _g("IPVSADM", "ipvsadm", plain_text),
    _g("Email.SMTP", "email_smtp", lambda v: parse_endpoint(v, port_required=False)),
    _g("Email.Headers.From", "email_from", plain_text),
    _g("Email.Headers.To", "email_to", plain_text),
    _g("Email.Headers.Reply-To", "email_reply_to", plain_text),
    _g("SorryServer.Default", "sorry_server_default", parse_optional_tag),
    _g("SorryServer.Fallback.Host", "sorry_server_fallback_host", plain_text),
    _g("SorryServer.Fallback.IP", "sorry_server_fallback_ip", parse_optional_ip),
    _g("SorryServer.Fallback.Title", "sorry_server_fallback_title", plain_text),
    _g("IPVS.Backend", "ipvs_backend", parse_backend),
    _g("IPVS.Scheduler", "ipvs_scheduler", parse_scheduler),
    _g("IPVS.Method", "ipvs_method", parse_method),
    _g("IPVS.ResyncPeriod", "ipvs_resync_period", parse_interval),
    _g("Check.Interval", "check_interval", parse_interval),
    _g("Check.Timeout.Connect", "check_timeout_connect", parse_interval),
    _g("Check.Timeout.Response", "check_timeout_response", parse_interval),
    _g("Check.Rise", "check_rise", lambda v: parse_int(v, 1)),
    _g("Check.Fall", "check_fall", lambda v: parse_int(v, 1)),
    _g("Check.Exec.MaxConcurrent", "check_exec_max_concurrent", lambda v: parse_int(v, 1, 4096)),
    _g("Metrics.Listen", "metrics_listen", lambda v: parse_endpoint(v, port_required=True)),
    _g("Cluster.Etcd", "cluster_etcd", lambda v: parse_endpoints(v)),
    _g("Cluster.Name", "cluster_name", lambda v: parse_cluster_word(v, "a cluster name")),
    _g("Cluster.Node", "cluster_node", lambda v: parse_cluster_word(v, "a director name")),
    _g("Cluster.Etcd.CACert", "cluster_etcd_cacert", plain_text),
    _g("Cluster.Etcd.Cert", "cluster_etcd_cert", plain_text),
    _g("Cluster.Etcd.Key", "cluster_etcd_key", plain_text),
    _g("Cluster.Etcd.User", "cluster_etcd_user", plain_text),
    _g("Cluster.Etcd.PasswordFile", "cluster_etcd_password_file", plain_text),
    _g("Check.DepoolThreshold", "check_depool_threshold", parse_fraction),
    _g("IPVS.Timeout", "ipvs_timeout", parse_interval),
)
"""Every global key, in SPEC order."""

GLOBALS_BY_LOWER: dict[str, GlobalKey] = {g.key.lower(): g for g in GLOBAL_KEYS}
"""Keys are matched case-insensitively (the SPEC spelling is what messages show)."""


@dataclass(frozen=True, slots=True)
class VsOption:
    """One VS option (`key=value` after CHECK): its converter and its value as a bare flag."""

    convert: Callable[[str], Any]
    flag: bool = False  # whether a bare `key` means `key=true`
    repeat: bool = False  # may be given more than once: the values are kept as a list, in order


VS_OPTIONS: dict[str, VsOption] = {
    "email": VsOption(parse_bool, flag=True),
    "sorry_server": VsOption(parse_host_tag),
    "proto": VsOption(parse_proto),
    "scheduler": VsOption(parse_scheduler),
    "method": VsOption(parse_method),
    "persistent": VsOption(lambda v: parse_int(v, 1, MAX_PERSISTENT)),
    "interval": VsOption(parse_interval),
    "connect_timeout": VsOption(parse_interval),
    "timeout": VsOption(parse_interval),
    "rise": VsOption(lambda v: parse_int(v, 1)),
    "fall": VsOption(lambda v: parse_int(v, 1)),
    # Its meaning depends on the check kind (statuses, a banner prefix, rcodes): see checkopts.
    "expect": VsOption(plain_text),
    "verify": VsOption(parse_bool, flag=True),
    "depool_threshold": VsOption(parse_fraction),
    "http_method": VsOption(parse_http_method),
    "header": VsOption(parse_header, repeat=True),
    "body": VsOption(parse_match_text),
    "send": VsOption(parse_match_text),
    "dynamic": VsOption(parse_bool, flag=True),
    "fast_interval": VsOption(parse_interval),
    "agent": VsOption(parse_port),
    "agent_interval": VsOption(parse_interval),
}
"""VS options by lower-case key."""


def parse_vs_options(tokens: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The OPTIONS column (comma- and/or space-separated) as {key: typed value}, and problems."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for item in (part for token in tokens for part in token.split(",") if part):
        key, eq, value = item.partition("=")
        name = key.lower()
        if name == "method" and value.upper() in HTTP_METHODS:
            name = "http_method"  # `method=HEAD|GET` is the HTTP method, nat|dr|tun forwarding
        option = VS_OPTIONS.get(name)
        if option is None:
            problems.append(f"unknown option {show(key)} (known: {', '.join(VS_OPTIONS)})")
        elif option.repeat and eq:
            try:
                values.setdefault(name, []).append(option.convert(value))
            except ValueError as exc:
                problems.append(f"option {name}: bad value {show(value)}: {exc}")
        elif name in values:
            problems.append(f"option '{name}' given twice")
        elif not eq and option.flag:
            values[name] = True
        elif not eq:
            problems.append(f"option '{name}' needs a value ({name}=...)")
        else:
            try:
                values[name] = option.convert(value)
            except ValueError as exc:
                problems.append(f"option {name}: bad value {show(value)}: {exc}")
    return values, problems


def cluster_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for Cluster.* options that do not go together."""
    problems: list[tuple[str, str]] = []
    if values.get("cluster_etcd") and not values.get("cluster_name"):
        problems.append(("Cluster.Etcd", "Cluster.Name is required with Cluster.Etcd"))
    if bool(values.get("cluster_etcd_cert")) != bool(values.get("cluster_etcd_key")):
        problems.append(("Cluster.Etcd.Cert", "Cluster.Etcd.Cert and Cluster.Etcd.Key go together"))
    if bool(values.get("cluster_etcd_user")) != bool(values.get("cluster_etcd_password_file")):
        problems.append(
            ("Cluster.Etcd.User", "Cluster.Etcd.User and Cluster.Etcd.PasswordFile go together")
        )
    return problems


def with_default_fifo(values: dict[str, Any], defaults: GlobalOptions) -> dict[str, Any]:
    """The options with `Management.Fifo.Path` derived when the file does not set it.

    Beside the Unix socket (`/run/ipvswm.sock` gives `/run/ipvswm.fifo`), or beside the DB when
    the Unix socket is off: every instance has its own socket and DB, so two daemons on one
    machine never share a FIFO (the original's `/tmp/fifo` was shared, and in a world-writable
    directory). `defaults` is a `GlobalOptions()` for the values the file leaves out.
    """
    if "management_fifo_path" in values:
        return values
    base = values.get("management_socket_path", defaults.management_socket_path) or values.get(
        "db", defaults.db
    )
    fifo = os.path.splitext(base)[0] + ".fifo"
    return {**values, "management_fifo_path": fifo if fifo != base else base + ".fifo"}
