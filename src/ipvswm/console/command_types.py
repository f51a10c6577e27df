"""The typed commands the console grammar produces (SPEC §7): one frozen value per command."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field

from ipvswm.events import AdminEvent
from ipvswm.events import ForgetHost

MAX_WEIGHT = 65535

# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Help:
    """`help [WORD]`: the command list (only commands starting with WORD if given)."""

    topic: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """`history`: this session's numbered command history."""


@dataclass(frozen=True, slots=True)
class Repeat:
    """`!` (last command) or `!N` (history entry N, 1-based)."""

    index: int | None = None


class ConfigAction(enum.Enum):
    RELOAD = "reload"
    DIFF = "diff"
    CHECK = "check"


@dataclass(frozen=True, slots=True)
class ConfigCmd:
    """`config reload [force]|diff|check` (`force`: apply even a reload that removes too much)."""

    action: ConfigAction
    force: bool = False


class DumpWhat(enum.Enum):
    STATUS = "status"
    OPTIONS = "options"
    CHECKERS = "checkers"
    HOSTS = "hosts"
    VS = "vs"


@dataclass(frozen=True, slots=True)
class Dump:
    """`dump status|options|checkers`, `dump host[s] [H]`, `dump vs [V]`."""

    what: DumpWhat
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Admin:
    """`set host H on|off|weight …` and `forget host H`: the engine's admin event as it is
    submitted, and `local` (with a cluster store: this director only, not shared; issue 12)."""

    event: AdminEvent | ForgetHost
    local: bool = False


@dataclass(frozen=True, slots=True)
class ShowVs:
    """`show vs` (vss None: one line per VS) or `show vs V[,V2]` (each with its pairs)."""

    vss: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ShowHosts:
    """`show hosts [H1,H2] [for V1,V2]`."""

    hosts: tuple[str, ...] | None = None
    vss: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ShowChecks:
    """`show checks`."""


@dataclass(frozen=True, slots=True)
class ShowCluster:
    """`show cluster`: the directors sharing admin state, the store's state and revision."""


class WaitFor(enum.Enum):
    UP = "up"
    DOWN = "down"
    QUIESCENT = "quiescent"


DEFAULT_WAIT_TIMEOUT = 300.0
MAX_WAIT_TIMEOUT = 86400.0  # a day: a forgotten `wait` must not hold a console slot for years


@dataclass(frozen=True, slots=True)
class Wait:
    """`wait host H quiescent|up|down [for vs V…] [timeout N]`."""

    host: str
    until: WaitFor
    vss: tuple[str, ...] | None = None
    timeout: float = DEFAULT_WAIT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Format:
    """`format json|text`."""

    json: bool


@dataclass(frozen=True, slots=True)
class LogLevel:
    """`log level N`."""

    level: int


@dataclass(frozen=True, slots=True)
class Auth:
    """`auth TOKEN`: this session may change state (`Management.Socket.Token`)."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Quit:
    """`quit|exit` (and ^D)."""


# What a session answers itself (its history and format), and what runs against the daemon.
SessionCommand = Help | History | Format | Quit
ControlCommand = (
    ConfigCmd | Dump | Admin | ShowVs | ShowHosts | ShowChecks | ShowCluster | Wait | LogLevel
)
Command = SessionCommand | ControlCommand | Repeat | Auth


def read_only(cmd: Command) -> bool:
    """Whether any console user may run it: it shows, waits or sets up the session only."""
    return isinstance(
        cmd,
        Help
        | History
        | Format
        | Quit
        | ShowVs
        | ShowHosts
        | ShowChecks
        | ShowCluster
        | Dump
        | Wait,
    )


@dataclass(frozen=True, slots=True)
class ParseError:
    """Input that is not a command: a short message and the closest command's syntax."""

    message: str
    hint: str = ""
