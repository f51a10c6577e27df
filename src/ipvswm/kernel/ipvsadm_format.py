"""ipvsadm's text forms: ops rendered as `-R` lines; `-S -n` and `-L -n` output parsed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace

from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

WEIGHT_MAX = 65535
PERSISTENT_MAX = 2678400
THRESHOLD_MAX = 2**32 - 1
FWMARK_MAX = 2**32 - 1

_PROTO_FLAG = {Protocol.TCP: "-t", Protocol.UDP: "-u", Protocol.SCTP: "--sctp-service"}
_FLAG_PROTO = {
    "-t": Protocol.TCP,
    "--tcp-service": Protocol.TCP,
    "-u": Protocol.UDP,
    "--udp-service": Protocol.UDP,
    "--sctp-service": Protocol.SCTP,
}
_LIST_PROTO = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_FORWARD_FLAG = {"-m": Forward.MASQ, "-g": Forward.ROUTE, "-i": Forward.TUNNEL}
_FORWARD_NAME = {
    "Masq": Forward.MASQ,
    "Route": Forward.ROUTE,
    "Tunnel": Forward.TUNNEL,
    "Local": Forward.LOCAL,
}
# Options of a -S line that carry a value; the rest are bare flags.
_VALUED = {"-s", "-p", "-M", "-b", "--pe", "-r", "-w", "-x", "-y", "--tun-type", "--tun-port"}


_LIST_HEADERS = ("IP Virtual Server", "Prot ", "  -> RemoteAddress")


class ParseError(ValueError):
    """ipvsadm output this module does not understand."""


def normalise_address(text: str) -> str:
    """An address in the table model's canonical form (no brackets, compressed IPv6)."""
    return str(ipaddress.ip_address(text.strip("[]")))


def format_hostport(address: str, port: int) -> str:
    """`addr:port`, with IPv6 addresses bracketed."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def split_hostport(text: str) -> tuple[str, int]:
    """Split `a.b.c.d:port` or `[v6]:port` into a normalised address and a port."""
    if text.startswith("["):
        addr, sep, port = text[1:].partition("]:")
        if not sep:
            raise ParseError(f"bad address:port {text!r}")
    else:
        addr, sep, port = text.rpartition(":")
        if not sep:
            raise ParseError(f"bad address:port {text!r}")
    try:
        return normalise_address(addr), int(port)
    except ValueError as exc:
        raise ParseError(f"bad address:port {text!r}") from exc


# --- rendering ------------------------------------------------------------------------------------


def service_args(key: ServiceKey) -> list[str]:
    """The SERVICE part of a command: `-t VIP:PORT`, `-u …`, or `-f MARK [-6]`."""
    if key.protocol is Protocol.FWMARK:
        return ["-f", str(key.port), "-6"] if key.ipv6 else ["-f", str(key.port)]
    return [_PROTO_FLAG[key.protocol], format_hostport(key.address, key.port)]


def _service_options(service: Service) -> list[str]:
    args = ["-s", service.scheduler]
    if service.persistent is not None:
        args += ["-p", str(service.persistent)]
        if service.netmask is not None:
            args += ["-M", service.netmask]
        if service.pe is not None:
            args += ["--pe", service.pe]
    if service.one_packet:
        args.append("-o")
    if service.flags:
        args += ["-b", ",".join(service.flags)]
    return args


def _dest_options(dest: Destination) -> list[str]:
    forward = Forward.ROUTE if dest.forward is Forward.LOCAL else dest.forward
    args = ["-r", format_hostport(dest.key.address, dest.key.port), "-" + forward.value]
    args += ["-w", str(dest.weight)]
    if dest.upper:
        args += ["-x", str(dest.upper)]
    if dest.lower:
        args += ["-y", str(dest.lower)]
    if forward is Forward.TUNNEL and dest.tun_type is not None:
        args += ["--tun-type", dest.tun_type]
        if dest.tun_port:
            args += ["--tun-port", str(dest.tun_port)]
    return args


def render_op(op: Op) -> list[str]:
    """The argv (without the program name) of one op, always with the full option set."""
    match op:
        case AddService(service=s):
            return ["-A", *service_args(s.key), *_service_options(s)]
        case EditService(service=s):
            return ["-E", *service_args(s.key), *_service_options(s)]
        case DeleteService(key=k):
            return ["-D", *service_args(k)]
        case AddDestination(service=k, destination=d):
            return ["-a", *service_args(k), *_dest_options(d)]
        case EditDestination(service=k, destination=d):
            return ["-e", *service_args(k), *_dest_options(d)]
        case DeleteDestination(service=k, key=dk):
            return ["-d", *service_args(k), "-r", format_hostport(dk.address, dk.port)]
    raise TypeError(f"not an op: {op!r}")  # pragma: no cover - the match is exhaustive


def render_line(op: Op) -> str:
    """One `-R` line for an op."""
    return " ".join(render_op(op))


OTHER_FAMILY = "Different address family is allowed only for tunneling servers"
TUN_TYPES = ("ipip", "gue", "gre")


def validate_op(op: Op) -> str | None:
    """ipvsadm's argument-error message for an op it would reject before the kernel, else None."""
    if isinstance(op, AddService | EditService):
        s = op.service
        if s.persistent is not None and not 1 <= s.persistent <= PERSISTENT_MAX:
            return "illegal timeout for persistent service specified"
        if s.key.protocol is not Protocol.FWMARK and s.key.port == 0 and s.persistent is None:
            return "Zero port specified for non-persistent service"
    key = op.key if isinstance(op, DeleteService) else _op_service_key(op)
    if key.protocol is Protocol.FWMARK and not 1 <= key.port <= FWMARK_MAX:
        return "illegal virtual server fwmark specified"
    if key.protocol is not Protocol.FWMARK and not 0 <= key.port <= 65535:
        return "illegal virtual server address[:port] specified"
    if isinstance(op, AddDestination | EditDestination):
        d = op.destination
        if not 0 <= d.weight <= WEIGHT_MAX:
            return "illegal weight specified"
        if (":" in d.key.address) != _op_service_key(op).ipv6 and d.forward is not Forward.TUNNEL:
            # ipvsadm refuses it itself, aborting a whole -R batch (checked on a real kernel).
            return OTHER_FAMILY
        if not 0 <= d.key.port <= 65535:
            return "illegal real server address[:port] specified"
        if not 0 <= d.upper <= THRESHOLD_MAX:
            return "illegal u_threshold specified"
        if not 0 <= d.lower <= THRESHOLD_MAX:
            return "illegal l_threshold specified"
        if d.tun_type is not None and d.tun_type not in TUN_TYPES:
            return "illegal tunnel type specified"
        if not 0 <= d.tun_port <= 65535:
            return "illegal tunnel port specified"
    return None


def _op_service_key(op: Op) -> ServiceKey:
    if isinstance(op, AddService | EditService):
        return op.service.key
    if isinstance(op, DeleteService):
        return op.key
    return op.service


# --- parsing `-S -n` ------------------------------------------------------------------------------


def _parse_service_spec(tokens: list[str]) -> tuple[ServiceKey, list[str]]:
    """Take the SERVICE spec out of a -S line's tokens; return the key and the other tokens."""
    rest: list[str] = []
    proto: Protocol | None = None
    spec: str | None = None
    ipv6 = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _FLAG_PROTO or tok in ("-f", "--fwmark-service"):
            if i + 1 >= len(tokens):
                raise ParseError(f"{tok} without a value")
            proto = _FLAG_PROTO.get(tok, Protocol.FWMARK)
            spec = tokens[i + 1]
            i += 2
            continue
        if tok in ("-6", "--ipv6"):
            ipv6 = True
        elif tok in _VALUED and i + 1 < len(tokens):
            rest += [tok, tokens[i + 1]]
            i += 2
            continue
        else:
            rest.append(tok)
        i += 1
    if proto is None or spec is None:
        raise ParseError("line without a service")
    if proto is Protocol.FWMARK:
        return ServiceKey(proto, "::" if ipv6 else "0.0.0.0", int(spec)), rest
    addr, port = split_hostport(spec)
    return ServiceKey(proto, addr, port), rest


def _pairs(tokens: list[str]) -> Iterable[tuple[str, str | None]]:
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _VALUED:
            if i + 1 >= len(tokens):
                raise ParseError(f"{tok} without a value")
            yield tok, tokens[i + 1]
            i += 2
        else:
            yield tok, None
            i += 1


def parse_service_line(tokens: list[str]) -> Service:
    """A `-A …` line (without the `-A`) as a Service."""
    key, rest = _parse_service_spec(tokens)
    fields: dict[str, object] = {}
    for opt, value in _pairs(rest):
        if opt == "-s":
            fields["scheduler"] = value
        elif opt == "-p":
            fields["persistent"] = int(value or 360)
        elif opt == "-M":
            fields["netmask"] = value
        elif opt == "-o":
            fields["one_packet"] = True
        elif opt == "-b":
            fields["flags"] = tuple((value or "").split(","))
        elif opt == "--pe":
            fields["pe"] = value
        else:
            raise ParseError(f"unknown service option {opt!r}")
    return replace(Service(key), **fields)  # type: ignore[arg-type]


def parse_dest_line(tokens: list[str]) -> tuple[ServiceKey, Destination]:
    """An `-a …` line (without the `-a`) as its service key and Destination."""
    key, rest = _parse_service_spec(tokens)
    dkey: DestKey | None = None
    forward = Forward.ROUTE
    weight, upper, lower = 1, 0, 0
    tun_type: str | None = None
    tun_port = 0
    for opt, value in _pairs(rest):
        if opt == "-r" and value is not None:
            dkey = DestKey(*split_hostport(value))
        elif opt in _FORWARD_FLAG:
            forward = _FORWARD_FLAG[opt]
        elif opt == "-w":
            weight = int(value or 0)
        elif opt == "-x":
            upper = int(value or 0)
        elif opt == "-y":
            lower = int(value or 0)
        elif opt == "--tun-type":
            tun_type = None if value == "ipip" else value  # ipip: the default, as the model has it
        elif opt == "--tun-port":
            tun_port = int(value or 0)
        elif opt.startswith("--tun-"):
            continue  # the checksum flags (--tun-nocsum, ...) are not part of the model
        else:
            raise ParseError(f"unknown destination option {opt!r}")
    if dkey is None:
        raise ParseError("destination line without -r")
    if forward is not Forward.TUNNEL:
        tun_type, tun_port = None, 0
    return key, Destination(
        dkey, forward, weight, upper, lower, tun_type=tun_type, tun_port=tun_port
    )


def parse_save(text: str) -> Table:
    """The output of `ipvsadm -S -n` as a Table (no connection counts, no thresholds)."""
    services: dict[ServiceKey, Service] = {}
    dests: dict[ServiceKey, dict[DestKey, Destination]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            if tokens[0] == "-A":
                service = parse_service_line(tokens[1:])
                services[service.key] = service
                dests.setdefault(service.key, {})
            elif tokens[0] == "-a":
                key, dest = parse_dest_line(tokens[1:])
                dests.setdefault(key, {})[dest.key] = dest
            else:
                raise ParseError(f"unexpected command {tokens[0]!r}")
        except (ParseError, ValueError) as exc:
            raise ParseError(f"ipvsadm -S line {number}: {exc}: {line!r}") from exc
    return Table(
        {k: ServiceEntry(s, dests.get(k, {})) for k, s in services.items()},
    )


# --- parsing `-L -n` ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedDest:
    """What one `-L -n` destination line tells (thresholds only with `--thresholds`)."""

    active: int
    inactive: int
    weight: int | None = None
    forward: Forward | None = None
    upper: int | None = None
    lower: int | None = None


def _listed_service_key(line: str) -> ServiceKey:
    tokens = line.split()
    if tokens[0] == "FWM":
        ipv6 = len(tokens) > 2 and tokens[2] == "IPv6"
        return ServiceKey(Protocol.FWMARK, "::" if ipv6 else "0.0.0.0", int(tokens[1]))
    if tokens[0] not in _LIST_PROTO:
        raise ParseError(f"unknown protocol in {line!r}")
    return ServiceKey(_LIST_PROTO[tokens[0]], *split_hostport(tokens[1]))


def parse_list(text: str) -> dict[tuple[ServiceKey, DestKey], ListedDest]:
    """`ipvsadm -L -n` or `-L -n --thresholds` output: per destination what the listing shows."""
    lines = text.splitlines()
    thresholds = any(line.startswith("Prot ") and "Uthreshold" in line for line in lines)
    result: dict[tuple[ServiceKey, DestKey], ListedDest] = {}
    service: ServiceKey | None = None
    for line in lines:
        if not line.strip() or line.startswith(_LIST_HEADERS):
            continue
        if line.startswith("  -> "):
            fields = line[5:].split()
            if service is None or len(fields) != 5:
                raise ParseError(f"unexpected listing line {line!r}")
            dkey = DestKey(*split_hostport(fields[0]))
            a, b, active, inactive = fields[1], fields[2], int(fields[3]), int(fields[4])
            if thresholds:
                entry = ListedDest(active, inactive, upper=int(a), lower=int(b))
            else:
                entry = ListedDest(active, inactive, weight=int(b), forward=_FORWARD_NAME.get(a))
            result[(service, dkey)] = entry
        else:
            service = _listed_service_key(line)
    return result


def merge_listing(table: Table, listing: Mapping[tuple[ServiceKey, DestKey], ListedDest]) -> Table:
    """The table with connection counts (and thresholds, when listed) taken from a listing."""
    services: dict[ServiceKey, ServiceEntry] = {}
    for key, entry in table.services.items():
        dests: dict[DestKey, Destination] = {}
        for dkey, dest in entry.destinations.items():
            listed = listing.get((key, dkey))
            if listed is not None:
                dest = replace(
                    dest,
                    active=listed.active,
                    inactive=listed.inactive,
                    upper=dest.upper if listed.upper is None else listed.upper,
                    lower=dest.lower if listed.lower is None else listed.lower,
                )
            dests[dkey] = dest
        services[key] = ServiceEntry(entry.service, dests)
    return Table(services)
