"""Issue 15 item 11: one labelled time format everywhere, and `dump options` as the file says."""

from __future__ import annotations

import dataclasses
import re

from ipvswm.alerts import Mailer
from ipvswm.config.model import GlobalOptions
from ipvswm.config.options import GLOBAL_KEYS
from ipvswm.console.session import Session
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.state import KeptHost
from ipvswm.engine.state import Phase
from ipvswm.engine.state import VsState
from ipvswm.store import format_dump
from ipvswm.timestamps import utc_text
from tests.unit.console_control import EngineControl
from tests.unit.console_control import sample_config

AT = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
SHOWN = "2023-11-14T22:13:20.250Z"
EPOCH_FLOAT = re.compile(r"= 1[0-9]{9}\.[0-9]+")  # a raw epoch float such as `= 1700000000.25`


def _control() -> EngineControl:
    control = EngineControl()
    snap = control.snapshot()
    pairs = dict(snap.pairs)
    pairs[("www", "web1")] = dataclasses.replace(
        pairs[("www", "web1")],
        phase=Phase.RAMPING,
        enabled_at=AT,
        ramp_deadline=AT,
        ramp_duration=10.0,
        last_check_started=AT,
    )
    control.shown = dataclasses.replace(  # a stored state: times no command gives
        snap,
        pairs=pairs,
        vss={"www": VsState(sorry_on=True, sorry_since=AT)},
        kept={"gone": KeptHost(removed_at=AT, reasons=frozenset({"maint"}))},
    )
    return control


def test_utc_text_is_iso_8601_utc_labelled() -> None:
    assert utc_text(AT) == SHOWN
    assert utc_text(0.0) == "1970-01-01T00:00:00.000Z"
    assert utc_text(None) == "-"
    assert "valid" in utc_text(1e300)  # never a traceback, never a repr


async def test_show_and_dump_print_the_same_format() -> None:
    control = _control()
    session = Session(control, "test")
    show = (await session.handle("show host web1")).lines
    assert f"(until {SHOWN})" in show[0]
    detail = (await session.handle("show vs www")).lines
    assert any(f"since {SHOWN}" in line for line in detail)
    kept = (await session.handle("show hosts")).lines
    assert any(f"removed {SHOWN}" in line for line in kept)

    dump = (await session.handle("dump host web1")).lines
    assert f"    enabled_at = {SHOWN}" in dump
    assert f"    ramp_deadline = {SHOWN}" in dump
    assert f"    last_check_started = {SHOWN}" in dump
    vs_dump = (await session.handle("dump vs www")).lines
    assert f"    sorry_since = {SHOWN}" in vs_dump
    checkers = (await session.handle("dump checkers")).lines
    assert "  last_started = 2023-11-14T22:13:20.000Z" in checkers
    for lines in (dump, vs_dump, checkers):
        assert not [line for line in lines if EPOCH_FLOAT.search(line)]

    # `ipvswm dump` (the store's own text) and the alert mails use the same helper.
    assert f"enabled_at={SHOWN}" in format_dump(control.snapshot())
    mail = Mailer(GlobalOptions(email_to="ops@example.org"), hostname="lb1")
    vs = sample_config().services[0]
    body = mail.build_message(SorryChange("www", True, AT), vs, []).get_content()
    assert f"went in at {SHOWN}" in body


async def test_dump_host_shows_no_python_repr() -> None:
    session = Session(EngineControl(), "test")
    lines = (await session.handle("dump host web1")).lines
    assert "  weights = www:100,api:50" in lines
    for text in [*lines, *(await session.handle("dump vs www")).lines]:
        assert "['" not in text and "{'" not in text and "None" not in text, text
        assert "True" not in text and "False" not in text, text


async def test_dump_options_uses_the_files_names_and_the_level_in_force() -> None:
    control = EngineControl()
    session = Session(control, "test")
    reply = await session.handle("dump options")
    assert [line.split(" = ")[0] for line in reply.lines] == [g.key for g in GLOBAL_KEYS]
    assert "Config.AutoCheck = yes" in reply.lines
    assert "Config.CheckPeriod = 3" in reply.lines
    assert "Log.Level = 1" in reply.lines
    assert not [line for line in reply.lines if "_" in line.split(" = ")[0]]
    assert reply.data["options"]["Config.AutoCheck"] is True  # type: ignore[index]

    assert (await session.handle("log level 4")).ok
    lines = (await session.handle("dump options")).lines
    (level,) = [line for line in lines if line.startswith("Log.Level = ")]
    assert level.startswith("Log.Level = 4")
    assert "the file says 1" in level
    data = (await session.handle("dump options")).data
    assert data["options"]["Log.Level"] == 4  # type: ignore[index]


async def test_dump_options_never_shows_the_token() -> None:
    config = sample_config()
    options = dataclasses.replace(config.options, management_socket_token="s3cret-token-value")
    control = EngineControl(dataclasses.replace(config, options=options))
    reply = await Session(control, "test").handle("dump options")
    assert "Management.Socket.Token = (set, not shown)" in reply.lines
    assert "s3cret" not in repr(reply.lines) + repr(reply.data)
