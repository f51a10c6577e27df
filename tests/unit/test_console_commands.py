"""The session and execute() against a real engine: every command, errors, `wait`, rendering."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from ipvswm.config.model import Method
from ipvswm.console.session import Session
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import Table
from ipvswm.views import service_key
from tests.unit.console_control import EngineControl
from tests.unit.console_control import sample_config


async def run(session: Session, line: str) -> tuple[int, list[str], dict[str, object]]:
    reply = await session.handle(line)
    return reply.status, reply.lines, reply.data


@pytest.fixture
def control() -> EngineControl:
    return EngineControl()


@pytest.fixture
def session(control: EngineControl) -> Session:
    return Session(control, "test")


ADMIN = [
    ("set host web1 off", SetHostOff("web1")),
    ("set host web1 off for reasons deploy", SetHostOff("web1", frozenset({"deploy"}))),
    ("set host web1 on in 20", SetHostOn("web1", frozenset({"default"}), 20.0)),
    ("set host web1 on reasons *", SetHostOn("web1", None)),
    (
        "set host web1 off for vs www,api for reasons deploy,kernel",
        SetPairsOff("web1", ("www", "api"), frozenset({"deploy", "kernel"})),
    ),
    ("set host web1 on in vs www reasons *", SetPairsOn("web1", ("www",), None)),
    ("set host web1 weight 7 for vs api", SetOverride("web1", 7, ("api",))),
    ("set host web1 weight default", SetOverride("web1", None, None)),
]


@pytest.mark.parametrize(("line", "event"), ADMIN, ids=[a[0] for a in ADMIN])
async def test_admin_commands_submit_events(
    control: EngineControl, session: Session, line: str, event: object
) -> None:
    status, lines, data = await run(session, line)
    assert status == 0
    assert lines[0].startswith("ok: host web1")
    assert control.submitted == [event]
    assert data["event"] == type(event).__name__


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("set host nosuch off", "# no such host 'nosuch'"),
        ("set host web1 off for vs nosuch", "# no such vs 'nosuch'"),
        ("set host web2 off for vs api", "# host 'web2' is not on vs 'api'"),
        ("set host web1 weight 3 for vs empty", "# host 'web1' is not on vs 'empty'"),
        ("show hosts nosuch", "# no such host 'nosuch'"),
        ("show hosts for nosuch", "# no such vs 'nosuch'"),
        ("show vs nosuch", "# no such vs 'nosuch'"),
        ("dump host nosuch", "# no such host 'nosuch'"),
        ("dump vs nosuch", "# no such vs 'nosuch'"),
        ("wait host nosuch up", "# no such host 'nosuch'"),
    ],
)
async def test_unknown_names_fail_with_a_hash_line(
    control: EngineControl, session: Session, line: str, error: str
) -> None:
    status, lines, data = await run(session, line)
    assert (status, lines) == (1, [error])
    assert data == {"error": error}
    assert control.submitted == []


async def test_the_engines_refusal_is_the_reply(control: EngineControl, session: Session) -> None:
    await run(session, "set host web1 off for reasons kernel")
    refusal = "# nothing removed: host web1 has no reason 'default'; still off (kernel)"
    assert await run(session, "set host web1 on") == (1, [refusal], {"error": refusal})
    assert control.submitted == [SetHostOff("web1", frozenset({"kernel"}))]


async def test_a_note_on_an_applied_command_is_shown(
    control: EngineControl, session: Session
) -> None:
    await run(session, "set host web1 off for reasons deploy,kernel")
    status, lines, data = await run(session, "set host web1 on reasons deploy")
    assert status == 0
    assert lines == ["ok: host web1: on (reasons deploy)", "note: still off (kernel)"]
    assert data["note"] == "still off (kernel)"


async def test_bad_input_answers_question_marks_with_a_hint(session: Session) -> None:
    status, lines, data = await run(session, "set host web1 of")
    assert status == 2
    assert lines[0].startswith("??? ")
    assert "set host H off" in lines[1]
    assert data["hint"]


async def test_empty_line_is_a_no_op(session: Session) -> None:
    assert await run(session, "   ") == (0, [], {})


async def test_history_and_repeat(control: EngineControl, session: Session) -> None:
    await run(session, "show vs")
    await run(session, "set host web1 off")
    await run(session, "bogus")  # not recorded
    status, lines, _ = await run(session, "history")
    assert status == 0
    assert [line.split(None, 1)[1] for line in lines] == ["show vs", "set host web1 off", "history"]
    await run(session, "!2")
    assert control.submitted == [SetHostOff("web1"), SetHostOff("web1")]
    status, lines, _ = await run(session, "!")  # the last one is `set host web1 off` again
    assert status == 0
    assert len(control.submitted) == 3
    assert session.history[-1] == "set host web1 off"
    assert (await run(session, "!99"))[0] == 1


async def test_repeat_with_empty_history(session: Session) -> None:
    assert await run(session, "!") == (1, ["# no command in history yet"], {})


async def test_help_quit_format_log(control: EngineControl, session: Session) -> None:
    _, lines, _ = await run(session, "help")
    assert any("wait host H" in line for line in lines)
    reply = await session.handle("quit")
    assert reply.close
    await run(session, "log level 6")
    assert control.log_level == 6
    await run(session, "format json")
    assert session.json
    obj = json.loads(session.encode(await session.handle("show vs"), "show vs"))
    assert obj["status"] == 0
    assert obj["command"] == "show vs"
    assert obj["data"]["vss"][0]["vs"] == "www"
    await run(session, "format text")
    assert session.encode(await session.handle("quit")) == b"bye\n"
    assert session.encode(await session.handle("log level 1")).endswith(b"\n$ ")


async def test_config_commands(control: EngineControl, session: Session) -> None:
    assert await run(session, "config reload") == (0, ["add vs new"], {"actions": ["add vs new"]})
    assert control.reloads == 1
    assert (await run(session, "config diff"))[1] == ["add vs new"]
    assert (await run(session, "config check"))[1] == ["config OK"]
    control.check_outcome = ReloadOutcome(ok=False, errors=("f.conf:3: bad weight",))
    assert await run(session, "config check") == (
        1,
        ["# f.conf:3: bad weight"],
        {"errors": ["f.conf:3: bad weight"]},
    )


async def test_dump_commands(session: Session) -> None:
    _, lines, data = await run(session, "dump status")
    assert "pid = 4242" in lines
    assert data["status"] == EngineControl().status()
    _, lines, _ = await run(session, "dump options")
    assert "Management.Socket.Port = 9000" in lines
    _, lines, data = await run(session, "dump checkers")
    assert lines[0] == "checker 127.0.0.2:80 http://www.example.org/health"
    assert len(data["checks"]) == 2  # type: ignore[arg-type]
    _, lines, data = await run(session, "dump host web1")
    assert lines[0] == "host web1"
    assert "  pair www/web1" in lines
    assert set(data["hosts"][0]["pairs"]) == {"www", "api"}  # type: ignore[index]
    _, lines, _ = await run(session, "dump hosts")
    assert "host web2" in lines
    _, lines, data = await run(session, "dump vs www")
    assert lines[0] == "vs www"
    assert "  managed = 1" in lines  # the engine manages every VS of its config


async def test_show_hosts_lines_and_summary(control: EngineControl, session: Session) -> None:
    control.set_kernel("www", "web1", active=5)
    control.set_kernel("api", "web1", active=2)
    status, lines, data = await run(session, "show host web1")
    assert status == 0
    assert lines == [
        "web1/www 127.0.0.2:80 Reasons=- Weight.Config=100 Weight.Override=- Weight.Desired=100"
        " Proc.Weight=100 Proc.ActiveConn=5 Proc.InActConn=0 Ramp=- Phase=ENABLED",
        "web1/api 127.0.0.2:8080 Reasons=- Weight.Config=50 Weight.Override=- Weight.Desired=50"
        " Proc.Weight=50 Proc.ActiveConn=2 Proc.InActConn=0 Ramp=- Phase=ENABLED",
        "web1 Total.ActiveConn=7 Total.Weight=150 Combined.TStatus=0-DONE",
    ]
    host = data["hosts"][0]  # type: ignore[index]
    assert (host["total_active"], host["total_weight"], host["tstatus"]) == (7, 150, "0-DONE")


async def test_show_hosts_reasons_override_and_pending(
    control: EngineControl, session: Session
) -> None:
    control.follow_kernel = False
    await run(session, "set host web1 off for reasons deploy")
    await run(session, "set host web1 off for vs www for reasons kernel")
    await run(session, "set host web2 weight 30")
    _, lines, _ = await run(session, "show hosts")
    assert "Reasons=host:deploy,kernel" in lines[0]
    assert "Weight.Desired=0 Proc.Weight=100" in lines[0]
    assert lines[2] == "web1 Total.ActiveConn=0 Total.Weight=150 Combined.TStatus=2-SYNC"
    assert "Weight.Override=30 Weight.Desired=30" in lines[3]
    control.now = 4e9 - 10.0  # the ramp ends in 2096
    await run(session, "set host web2 off")
    await run(session, "set host web2 on in 10")
    control.pass_checks()
    _, lines, _ = await run(session, "show hosts web2")
    assert "Ramp=" in lines[0] and "until 2096" in lines[0]
    assert lines[-1].endswith("Combined.TStatus=1-RAMPING")
    _, lines, _ = await run(session, "show hosts for api")
    assert [line.split()[0] for line in lines] == ["web1/api", "web1"]


async def test_show_vs(control: EngineControl, session: Session) -> None:
    _, lines, data = await run(session, "show vs")
    assert lines[0] == (
        "www tcp:192.0.2.1:80 Check=http://www.example.org/health Hosts=2"
        " Weight.Desired=200 Proc.Weight=200 Sorry=off"
    )
    assert lines[2].startswith("empty tcp:[2001:db8::1]:443 Check=- Hosts=0")
    assert len(data["vss"]) == 3  # type: ignore[arg-type]
    _, lines, data = await run(session, "show vs www, empty")
    assert lines[1].startswith("  web1/www 127.0.0.2:80")
    assert lines[3] == "  sorry server: sorry 127.0.0.9:80 off Proc.Present=0"
    # the IPv4 fallback cannot serve the IPv6 VS: as the engine, show names none
    assert lines[-1] == "  sorry server: none configured"
    assert data["vss"][0]["sorry_server"] == {  # type: ignore[index]
        "name": "sorry", "address": "127.0.0.9", "port": 80
    }  # fmt: skip


async def test_show_checks(session: Session) -> None:
    _, lines, data = await run(session, "show checks")
    assert lines[0].startswith("127.0.0.2:80 http://www.example.org/health Status=pass Last=")
    assert "Duration=0.012s Cause=- Pairs=www/web1" in lines[0]
    assert lines[1] == (
        "127.0.0.3:80 tcp:// Status=fail Last=- Duration=- Cause=connect refused Pairs=-"
    )
    assert data["checks"][1]["status"] == "fail"  # type: ignore[index]


async def test_show_checks_counts_checks_that_gave_no_verdict(
    control: EngineControl, session: Session
) -> None:
    control.check_views[1] = dataclasses.replace(control.check_views[1], no_verdict=4)
    _, lines, data = await run(session, "show checks")
    assert "NoVerdict" not in lines[0]
    assert lines[1].endswith(" Pairs=- NoVerdict=4")
    assert data["checks"][1]["no_verdict"] == 4  # type: ignore[index]


async def test_wait_returns_when_reached(control: EngineControl, session: Session) -> None:
    control.set_kernel("www", "web1", active=3)
    task = asyncio.create_task(session.handle("wait host web1 quiescent for vs www timeout 30"))
    await asyncio.sleep(0)
    assert not task.done()
    control.set_kernel("www", "web1", active=0)
    reply = await task
    assert reply.status == 0
    assert reply.lines[0].startswith("ok: host web1 on vs www is quiescent")
    assert control.kernel_reads >= 1  # counts are re-read before a look, never trusted stale


async def test_wait_up_and_down_need_no_fresh_kernel_read(
    control: EngineControl, session: Session
) -> None:
    assert (await run(session, "wait host web1 up timeout 1"))[0] == 0
    assert control.kernel_reads == 0  # weights are what the daemon applied: always current


async def test_wait_up_needs_full_weight_and_enabled(
    control: EngineControl, session: Session
) -> None:
    control.follow_kernel = False
    await run(session, "set host web1 off")
    assert (await run(session, "wait host web1 down timeout 0.05"))[0] == 3
    control.apply_desired()
    assert (await run(session, "wait host web1 down timeout 1"))[0] == 0
    await run(session, "set host web1 on")
    control.pass_checks()
    control.advance(60.0)  # past the ramp
    task = asyncio.create_task(session.handle("wait host web1 up timeout 30"))
    await control.until_waiting()  # it has looked: not up
    control.set_kernel("www", "web1", weight=100)
    await control.until_waiting()  # it has looked again after the change
    assert not task.done()  # api is not at full weight yet
    control.set_kernel("api", "web1", weight=50)
    assert (await task).status == 0


async def test_wait_timeout_is_status_3_and_does_not_block_others(control: EngineControl) -> None:
    control.set_kernel("www", "web1", active=1)
    waiter, other = Session(control, "a"), Session(control, "b")
    task = asyncio.create_task(waiter.handle("wait host web1 quiescent timeout 0.3"))
    await control.until_read()  # it has looked: one active connection
    assert (await other.handle("show vs")).status == 0
    assert (await other.handle("set host web2 off")).status == 0
    assert not task.done()
    reply = await task
    assert reply.status == 3
    assert reply.lines == ["# timeout: host web1 not quiescent after 0.3s"]


def dr_control() -> EngineControl:
    """www with method=dr on port 80, its real servers on 8080: the kernel holds them on 80."""
    config = sample_config()
    www = dataclasses.replace(config.services[0], rs_port=8080, method=Method.DR)
    config = dataclasses.replace(config, services=(www, *config.services[1:]))
    return EngineControl(config, follow_kernel=False)


async def test_dr_pair_shows_the_kernel_weight_on_the_vs_port() -> None:
    control = dr_control()
    key = service_key(control.config().services[0])
    assert DestKey("127.0.0.2", 80) in control.kernel().services[key].destinations
    control.set_kernel("www", "web1", weight=60, active=4)
    _, lines, data = await run(Session(control, "test"), "show host web1 in vs www")
    assert lines[0] == (
        "web1/www 127.0.0.2:8080 Reasons=- Weight.Config=100 Weight.Override=- Weight.Desired=100"
        " Proc.Weight=60 Proc.ActiveConn=4 Proc.InActConn=0 Ramp=- Phase=ENABLED"
    )
    assert lines[1] == "web1 Total.ActiveConn=4 Total.Weight=60 Combined.TStatus=1-SYNC"
    pair = data["hosts"][0]["pairs"][0]  # type: ignore[index]
    assert (pair["port"], pair["kernel_weight"]) == (8080, 60)
    _, lines, _ = await run(Session(control, "test"), "show vs www")
    assert "Weight.Desired=200 Proc.Weight=160" in lines[0]
    assert lines[-1] == "  sorry server: sorry 127.0.0.9:8080 off Proc.Present=0"
    entry = control.table.services[key]
    sorry = Destination(DestKey("127.0.0.9", 80), Forward.ROUTE)  # where the engine puts it
    dests = {**entry.destinations, sorry.key: sorry}
    control.table = Table({key: ServiceEntry(entry.service, dests)})
    _, lines, _ = await run(Session(control, "test"), "show vs www")
    assert lines[-1] == "  sorry server: sorry 127.0.0.9:8080 off Proc.Present=1"


async def test_wait_up_on_a_dr_pair_succeeds() -> None:
    control = dr_control()
    session = Session(control, "test")
    await run(session, "set host web1 off")
    control.apply_desired()
    assert (await run(session, "wait host web1 down timeout 1"))[0] == 0
    await run(session, "set host web1 on")
    assert (await run(session, "wait host web1 up for vs www timeout 0.05"))[0] == 3
    control.pass_checks()
    control.advance(60.0)  # past the ramp
    control.apply_desired()
    status, lines, _ = await run(session, "wait host web1 up for vs www timeout 1")
    assert (status, lines[0][:30]) == (0, "ok: host web1 on vs www is up ")


async def test_wait_is_refused_before_the_kernel_was_read(
    control: EngineControl, session: Session
) -> None:
    control.is_ready = False
    status, lines, _ = await run(session, "wait host web1 down timeout 5")
    assert (status, lines) == (
        1,
        ["# the daemon is starting: the kernel table has not been read yet"],
    )


async def test_quiescent_is_never_judged_from_a_failed_read(
    control: EngineControl, session: Session
) -> None:
    control.kernel_readable = False  # the cached counts say 0, but no fresh read worked
    status, lines, _ = await run(session, "wait host web1 quiescent timeout 0.3")
    assert status == 3, lines
