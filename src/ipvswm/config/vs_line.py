"""A virtual service line (`! TAG ADDR:PORT[:RSPORT] CHECK [OPTIONS]`) to a VirtualService."""

from __future__ import annotations

from ipvswm.config.checkspec import build_spec
from ipvswm.config.checkspec import parse_check_column
from ipvswm.config.checkspec import split_exec_args
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Proto
from ipvswm.config.model import VirtualService
from ipvswm.config.model import shown_address
from ipvswm.config.options import parse_vs_options
from ipvswm.config.parse_state import VS_SYNTAX
from ipvswm.config.parse_state import ParseState


def vs_line(
    state: ParseState, number: int, tokens: list[str], g: GlobalOptions
) -> VirtualService | None:
    """Build one VS line (`!` already removed), or record why it is wrong."""
    if not tokens:
        state.error(number, f"malformed virtual service line: expected {VS_SYNTAX}")
        return None
    tag = tokens[0]
    if not state.declare(number, tag, "virtual service"):
        return None
    where = f"virtual service '{tag}'"
    if len(tokens) < 3:
        missing = "ADDR:PORT and CHECK" if len(tokens) == 1 else "CHECK"
        state.error(number, f"{where}: missing {missing}: expected {VS_SYNTAX}")
        return None
    where_to = state.address(number, where, tokens[1], (1, 2))
    try:
        form = parse_check_column(tokens[2])
    except ValueError as exc:
        state.error(number, f"{where}: {exc}")
        form = None
    check: CheckSpec | None = None
    args: list[str] = []
    option_tokens = tokens[3:]
    if form is not None and form.kind is CheckKind.EXEC:
        args, option_tokens = split_exec_args(option_tokens)
    opts, problems = parse_vs_options(option_tokens)
    for problem in problems:
        state.error(number, f"{where}: {problem}")
    if "sorry_server" in opts:
        state.sorry_refs.append((number, tag, opts["sorry_server"]))
    if form is not None and not problems:
        check, problems = build_spec(form, args, opts, g)
        for problem in problems:
            state.error(number, f"{where}: {problem}")
    if where_to is None or form is None or problems:
        return None
    assert check is not None
    address, name, ports = where_to
    vs = VirtualService(
        tag=tag,
        address=address,
        port=ports[0],
        rs_port=ports[-1],
        check=check,
        proto=opts.get("proto", Proto.TCP),
        email=opts.get("email", False),
        sorry_server=opts.get("sorry_server"),
        scheduler=opts.get("scheduler", g.ipvs_scheduler),
        method=opts.get("method", g.ipvs_method),
        persistent=opts.get("persistent"),
        name=name,
        line=number,
        depool_threshold=opts.get("depool_threshold", g.check_depool_threshold),
        agent_port=opts.get("agent"),
        agent_interval=opts.get("agent_interval"),
    )
    return vs if _unique_service(state, vs) else None


def _unique_service(state: ParseState, vs: VirtualService) -> bool:
    """Whether no earlier VS has this (proto, address, port); records an error if one has."""
    key = (vs.proto, vs.address, vs.port)
    other = state.service_keys.get(key)
    if other is None:
        state.service_keys[key] = (vs.tag, vs.line)
        return True
    addr = shown_address(vs.address)
    state.error(
        vs.line,
        f"virtual service '{vs.tag}': {vs.proto.value} {addr}:{vs.port} is already used by "
        f"virtual service '{other[0]}' (line {other[1]})",
    )
    return False
