"""Alert mails: message building (pure), relay parsing, and the host list from state."""

from __future__ import annotations

import dataclasses

import pytest

from ipvswm.alerts import Mailer
from ipvswm.alerts import host_lines
from ipvswm.alerts import parse_smtp
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Host
from ipvswm.config.model import Method
from ipvswm.config.model import VirtualService
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import CheckStatus
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

OPTIONS = GlobalOptions(
    email_smtp="127.0.0.1:2525",
    email_from="lb@example.org",
    email_to="ops@example.org, oncall@example.org",
    email_reply_to="noc@example.org",
)
WWW = VirtualService(
    tag="www",
    address="192.0.2.10",
    port=80,
    rs_port=80,
    check=CheckSpec(kind=CheckKind.HTTP, path="/health"),
    email=True,
    sorry_server="sorry",
    name="www.example.org",
)
LINES = ["web1 127.0.0.2:80 weight 0 AWAIT_PASS", "web2 127.0.0.3:80 weight 0 DISABLED"]
AT = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def test_fail_message() -> None:
    mailer = Mailer(OPTIONS, hostname="lb1")
    message = mailer.build_message(SorryChange("www", True, AT, sorry_host="sorry"), WWW, LINES)
    assert message["Subject"] == "VS 'www' FAIL"
    assert message["From"] == "lb@example.org"
    assert message["To"] == "ops@example.org, oncall@example.org"
    assert message["Reply-To"] == "noc@example.org"
    assert message["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@lb1>")
    body = message.get_content()
    assert "Virtual service 'www' tcp:192.0.2.10:80 (www.example.org)" in body
    assert "sorry server 'sorry' went in at 2023-11-14T22:13:20.000Z" in body
    assert (
        "  web1 127.0.0.2:80 weight 0 AWAIT_PASS\n  web2 127.0.0.3:80 weight 0 DISABLED\n" in body
    )


def test_ok_message_defaults() -> None:
    options = GlobalOptions(email_to="ops@example.org")
    mailer = Mailer(options, hostname="lb1")
    change = SorryChange("www", False, AT, after=12.34)
    message = mailer.build_message(change, WWW, [])
    assert message["Subject"] == "VS 'www' OK (after 12.3s)"
    assert message["From"] == "ipvs-weightman@lb1"
    assert message["Reply-To"] is None
    body = message.get_content()
    assert "has real servers with weight again" in body
    assert "went out at 2023-11-14T22:13:20.000Z, after 12.3s" in body
    assert "(no hosts)" in body


def test_should_mail() -> None:
    assert Mailer.should_mail(WWW)
    quiet = VirtualService(tag="q", address="192.0.2.11", port=80, rs_port=80, check=WWW.check)
    assert not Mailer.should_mail(quiet)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("  ", None),
        ("127.0.0.1", ("127.0.0.1", 25)),
        ("127.0.0.1:2525", ("127.0.0.1", 2525)),
        ("mail.example.org:587", ("mail.example.org", 587)),
        ("[2001:db8::25]:2525", ("2001:db8::25", 2525)),
        ("[2001:db8::25]", ("2001:db8::25", 25)),
        ("2001:db8::25", ("2001:db8::25", 25)),
    ],
)
def test_parse_smtp(value: str, expected: tuple[str, int] | None) -> None:
    assert parse_smtp(value) == expected


@pytest.mark.parametrize(
    "value", ["host:", ":25", "host:smtp", "host:0", "host:70000", "[::1", "[::1]x", "[::1]:"]
)
def test_parse_smtp_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=r"bad Email\.SMTP"):
        parse_smtp(value)


def test_bad_relay_is_logged_and_nothing_queued(caplog: pytest.LogCaptureFixture) -> None:
    mailer = Mailer(GlobalOptions(email_smtp="host:smtp", email_to="ops@example.org"))
    assert "alerts will not be sent" in caplog.text
    mailer.notify(SorryChange("www", True, AT), WWW, LINES)
    assert mailer.pending == 0
    assert "alert \"VS 'www' FAIL\" not sent: bad Email.SMTP" in caplog.text


def test_no_recipient_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    mailer = Mailer(GlobalOptions())
    mailer.notify(SorryChange("www", True, AT), WWW, LINES)
    assert mailer.pending == 0
    assert "Email.Headers.To is empty" in caplog.text


def test_host_lines_from_state() -> None:
    config = Config(
        services=(WWW,),
        hosts=(
            Host(tag="web1", address="127.0.0.2", weights=(("www", 100),)),
            Host(tag="web2", address="2001:db8::3", port=8080, weights=(("www", 50),)),
            Host(tag="sorry", address="127.0.0.9"),
        ),
    )
    snapshot = StateSnapshot(
        hosts={"web2": HostState(reasons=frozenset({"maintenance"}))},
        pairs={
            ("www", "web1"): PairState(
                weight=0,
                phase=Phase.AWAIT_PASS,
                check_status=CheckStatus.FAIL,
                check_cause="status 503",
            ),
            ("www", "web2"): PairState(phase=Phase.DISABLED, check_status=CheckStatus.PASS),
        },
    )
    key = ServiceKey(Protocol.TCP, "192.0.2.10", 80)
    dest = DestKey("127.0.0.2", 80)
    kernel = Table({key: ServiceEntry(Service(key), {dest: Destination(dest, weight=0)})})
    assert host_lines(config, snapshot, kernel, "www") == [
        "web1 127.0.0.2:80 weight 0 (config 100, kernel 0) AWAIT_PASS, check fail (status 503)",
        "web2 [2001:db8::3]:8080 weight 0 (config 50, kernel -) DISABLED, check pass, "
        "reasons maintenance",
    ]
    assert host_lines(config, snapshot, kernel, "other") == []


def test_host_lines_of_a_dr_vs_show_the_kernel_weight() -> None:
    """method=dr: the kernel holds web1 (port 8080) on the VS's port 80."""
    www = dataclasses.replace(WWW, rs_port=8080, method=Method.DR)
    config = Config(services=(www,), hosts=(Host("web1", "127.0.0.2", weights=(("www", 10),)),))
    snapshot = StateSnapshot(pairs={("www", "web1"): PairState(weight=10, phase=Phase.ENABLED)})
    key = ServiceKey(Protocol.TCP, "192.0.2.10", 80)
    dest = DestKey("127.0.0.2", 80)
    kernel = Table({key: ServiceEntry(Service(key), {dest: Destination(dest, weight=10)})})
    assert host_lines(config, snapshot, kernel, "www") == [
        "web1 127.0.0.2:8080 weight 10 (config 10, kernel 10) ENABLED, check unknown"
    ]


async def test_full_queue_drops_oldest_and_close_reports_unsent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer = Mailer(OPTIONS, queue_limit=1)  # never started: nothing is sent
    mailer.notify(SorryChange("www", True, AT), WWW, LINES)
    mailer.notify(SorryChange("www", False, AT + 5, after=5.0), WWW, LINES)
    assert mailer.pending == 1
    assert "alert \"VS 'www' FAIL\" dropped: too many alerts waiting" in caplog.text
    await mailer.close()
    assert "1 alert(s) not sent: shutting down" in caplog.text
    assert mailer.failed == 2
