"""The ipvsadm emulator against every example and error case of /work/shared/IPVSADM.md."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.emulator import Emulator

pytestmark = pytest.mark.integration

SAVE_EXAMPLE = """\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3
-a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.168.1.12:80 -i -w 0 --tun-type ipip
-A -t 10.0.0.4:443 -s wrr -p 600 -M 255.255.255.0
-A -u 10.0.0.3:53 -s rr -o
-A -t [2001:db8::1]:80 -s rr
-a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 2
-A -f 42 -s sh -b sh-fallback,sh-port
"""

# IPVSADM.md's -L example shows a table that differs from its -S example: it has 10.0.0.2:0
# (persistent, 360) and lacks the tunnel destination 192.168.1.12. Built here to match it.
LIST_EXAMPLE = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    "TCP  10.0.0.1:80 rr\n"
    "  -> 192.168.1.10:8080            Masq    3      0          0         \n"
    "  -> 192.168.1.11:80              Route   1      0          0         \n"
    "TCP  10.0.0.2:0 rr persistent 360\n"
    "TCP  10.0.0.4:443 wrr persistent 600 mask 255.255.255.0\n"
    "UDP  10.0.0.3:53 rr ops\n"
    "TCP  [2001:db8::1]:80 rr\n"
    "  -> [2001:db8::10]:8080          Masq    2      0          0         \n"
    "FWM  42 sh (sh-fallback,sh-port)\n"
)

NO_IPVS = (
    "Can't initialize ipvs: Protocol not available\n"
    "Are you sure that IP Virtual Server is built in the kernel or as module?\n"
)
NO_SCHED = "Scheduler or persistence engine not found"
BAD_WEIGHT = "illegal weight specified"
BAD_RS = "illegal real server address[:port] specified"
ZERO_PORT = "Zero port specified for non-persistent service"
# The "Try" line names the program as invoked (argv[0]), as the real ipvsadm does.
TRYHELP = "Try `{0} -h' or '{0} --help' for more information.\n"


@pytest.fixture
def emu(tmp_path: Path) -> Emulator:
    e = Emulator(tmp_path)
    e.require_disposable_table()  # these tests clear and rebuild the whole table
    return e


@pytest.fixture(scope="module")
def example_state(tmp_path_factory: pytest.TempPathFactory) -> bytes | None:
    emu = Emulator(tmp_path_factory.mktemp("example"))
    if emu.real:
        return None  # a real table is loaded afresh for each test
    result = emu.restore(SAVE_EXAMPLE)
    assert (result.exit, result.stdout, result.stderr) == (0, "", "")
    return emu.state.read_bytes()


@pytest.fixture
def example(emu: Emulator, example_state: bytes | None) -> Emulator:
    if example_state is None:
        result = emu.restore(SAVE_EXAMPLE)
        assert (result.exit, result.stdout, result.stderr) == (0, "", "")
    else:
        emu.state.write_bytes(example_state)  # the example table, built once
    return emu


def test_save_example_round_trips_byte_for_byte(example: Emulator) -> None:
    assert example.table_text() == SAVE_EXAMPLE


def test_list_example_byte_for_byte_with_trailing_spaces(example: Emulator) -> None:
    assert example.run("-A", "-t", "10.0.0.2:0", "-s", "rr", "-p").exit == 0
    assert example.run("-d", "-t", "10.0.0.1:80", "-r", "192.168.1.12").exit == 0
    assert example.list_text() == LIST_EXAMPLE
    assert example.run("-Ln").stdout == LIST_EXAMPLE  # bundled options
    assert example.run("-l", "--numeric").stdout == LIST_EXAMPLE


def test_list_of_one_service_omits_the_version_line(example: Emulator) -> None:
    result = example.run("-L", "-n", "-t", "10.0.0.1:80")
    assert result.stdout == "".join(LIST_EXAMPLE.splitlines(keepends=True)[1:4]) + (
        "  -> 192.168.1.10:8080            Masq    3      0          0         \n"
        "  -> 192.168.1.11:80              Route   1      0          0         \n"
        "  -> 192.168.1.12:80              Tunnel  0      0          0         \n"
    )


def test_empty_table_saves_nothing(emu: Emulator) -> None:
    result = emu.run("-S", "-n")
    assert (result.exit, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["-A", "-t", "10.0.0.1:80", "-s", "rr"], "Service already exists", 255),
        (
            ["-A", "-t", "10.0.0.9:80", "-s", "nope"],
            "Scheduler or persistence engine not found",
            255,
        ),
        (
            ["-E", "-t", "10.0.0.1:80", "-s", "nope"],
            "Scheduler or persistence engine not found",
            255,
        ),
        (["-E", "-t", "10.0.0.9:80"], "No such service", 255),
        (["-D", "-t", "10.0.0.9:80"], "No such service", 255),
        (["-Z", "-t", "10.0.0.9:80"], "No such service", 255),
        (["-a", "-t", "10.0.0.9:80", "-r", "10.1.1.1"], "Service not defined", 255),
        (["-e", "-t", "10.0.0.9:80", "-r", "10.1.1.1"], "Service not defined", 255),
        (["-d", "-t", "10.0.0.9:80", "-r", "10.1.1.1"], "Service not defined", 255),
        (["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.11"], "Destination already exists", 255),
        (["-e", "-t", "10.0.0.1:80", "-r", "10.1.1.1"], "No such destination", 255),
        (["-d", "-t", "10.0.0.1:80", "-r", "10.1.1.1"], "No such destination", 255),
        (
            ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-x", "5", "-y", "9"],
            "Numerical result out of range",
            255,
        ),
        (["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "1.5"], "illegal weight specified", 2),
        (["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "abc"], "illegal weight specified", 2),
        (["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", ""], "illegal weight specified", 2),
        (["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "-1"], "illegal weight specified", 2),
        (
            ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "2147483648"],
            "illegal weight specified",
            2,
        ),
        (
            ["-a", "-t", "10.0.0.1:80", "-r", "[2001:db8::9]:80", "-m"],
            "Different address family is allowed only for tunneling servers",
            2,
        ),
        (["-A", "-t", "nohost.invalid:80"], "illegal virtual server address[:port] specified", 2),
        (["-A", "-t", "10.0.0.9:99999"], "illegal virtual server address[:port] specified", 2),
        (
            ["-a", "-t", "10.0.0.1:80", "-r", "x.y"],
            "illegal real server address[:port] specified",
            2,
        ),
        (
            ["-A", "-t", "10.0.0.9:0", "-s", "rr"],
            "Zero port specified for non-persistent service",
            2,
        ),
        (["-A", "-E", "-t", "10.0.0.9:80"], "invalid option `-E'", 2),
        (
            ["-a", "-t", "10.0.0.1:80"],
            "You need to supply the 'real-server' option for the 'add-server' command",
            2,
        ),
        (["-L", "-n", "extra"], "unexpected argument extra", 2),
        (["--bogus"], TRYHELP, 255),
        (["-t", "10.0.0.1:80"], TRYHELP, 255),
        (["-L", "--bogus"], "--bogus: unknown option", 255),
        (["-L", "-n", "-t", "10.0.0.9:80"], "No such service", 1),
    ],
)
def test_error_cases(example: Emulator, args: list[str], message: str, code: int) -> None:
    before = example.table_text()
    result = example.run(*args)
    expected = message.format(example.binary) if message is TRYHELP else message + "\n"
    assert (result.exit, result.stdout, result.stderr) == (code, "", expected)
    assert example.table_text() == before


def test_no_ipvs_mode_fails_every_command_even_help(tmp_path: Path) -> None:
    emu = Emulator(tmp_path, no_ipvs=True)
    emu.require_emulator()
    for args in (["-h"], ["-L", "-n"], ["-S", "-n"], ["-R"]):
        result = emu.run(*args)
        assert (result.exit, result.stdout, result.stderr) == (2, "", NO_IPVS)


def test_restore_goes_on_after_kernel_errors_and_exits_with_the_last_line(emu: Emulator) -> None:
    batch = (
        "-A -t 10.0.0.1:80 -s wrr\n"
        "-e -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 5\n"  # kernel error: no such destination
        "-a -t 10.0.0.1:80 -r 10.1.1.2:80 -m -w 5\n"
    )
    result = emu.restore(batch)
    assert (result.exit, result.stderr) == (0, "No such destination\n")
    assert "10.1.1.2:80 -m -w 5" in emu.table_text()
    result = emu.restore("-a -t 10.0.0.1:80 -r 10.1.1.3:80 -m\n-D -t 10.0.0.9:80\n")
    assert (result.exit, result.stderr) == (255, "No such service\n")
    assert "10.1.1.3:80" in emu.table_text()


def test_restore_aborts_on_argument_errors_keeping_earlier_lines(emu: Emulator) -> None:
    batch = (
        "-A -t 10.0.0.1:80 -s wrr\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w nope\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.2:80 -m -w 5\n"
    )
    result = emu.restore(batch)
    assert (result.exit, result.stderr) == (2, "illegal weight specified\n")
    assert emu.table_text() == "-A -t 10.0.0.1:80 -s wrr\n"


def test_restore_hash_is_not_a_comment(emu: Emulator) -> None:
    result = emu.restore("-A -t 10.0.0.1:80 -s wrr\n# a comment\n-A -t 10.0.0.2:80 -s wrr\n")
    assert (result.exit, result.stderr) == (255, TRYHELP.format(emu.binary))
    assert emu.table_text() == "-A -t 10.0.0.1:80 -s wrr\n"


def test_restore_drops_the_word_ipvsadm_and_blank_lines_and_splits_on_tabs(emu: Emulator) -> None:
    result = emu.restore(
        "ipvsadm -A -t 10.0.0.1:80 -s rr\n\n  \n-a\t-t 10.0.0.1:80 ipvsadm -r 10.1.1.1\r\n"
    )
    assert (result.exit, result.stderr) == (0, "")
    assert emu.table_text() == (
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -g -w 1\n"
    )


def test_edit_resets_every_option_not_given(emu: Emulator) -> None:
    emu.restore(
        "-A -t 10.0.0.1:80 -s sh -p 600 -b sh-port\n"
        "-a -t 10.0.0.1:8080 -r 10.1.1.1:8080 -m -w 7\n".replace("8080 -r", "80 -r")
    )
    assert emu.run("-e", "-t", "10.0.0.1:80", "-r", "10.1.1.1:8080", "-m").exit == 0
    assert emu.run("-E", "-t", "10.0.0.1:80").exit == 0
    assert emu.table_text() == (
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.1.1:8080 -m -w 1\n"
    )
    # -e without -m means -g, which forces the destination port to the service port.
    result = emu.run("-e", "-t", "10.0.0.1:80", "-r", "10.1.1.1:8080", "-w", "3")
    assert (result.exit, result.stderr) == (255, "No such destination\n")


def test_route_and_tunnel_force_the_service_port_and_r_without_port(emu: Emulator) -> None:
    emu.run("-A", "-t", "10.0.0.1:80")
    assert emu.run("-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1:8080", "-g").exit == 0
    assert emu.run("-a", "-t", "10.0.0.1:80", "-r", "10.1.1.2:8080", "-i", "-w", "010").exit == 0
    assert emu.run("-a", "-t", "10.0.0.1:80", "-r", "10.1.1.3", "-m").exit == 0
    assert emu.table_text() == (
        "-A -t 10.0.0.1:80 -s wlc\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -g -w 1\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.2:80 -i -w 10 --tun-type ipip\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.3:80 -m -w 1\n"
    )


def test_sort_order_and_long_options(emu: Emulator) -> None:
    lines = [
        "--add-service --fwmark-service 7 -6 --scheduler rr",
        "-A -f 3 -s rr",
        "-A --sctp-service 10.0.0.1:80 -s rr",
        "-A --tcp-service [2001:db8::2]:80 -s rr",
        "-A --udp-service 10.0.0.1:80 -s rr",
        "-A -t 10.0.0.10:80 -s rr",
        "-A -t 10.0.0.2:443 -s rr",
        "-A -t 10.0.0.2:80 -s rr",
        "--add-server -t 10.0.0.2:80 --real-server 10.1.1.20:80 --masquerading --weight 2",
        "-a -t 10.0.0.2:80 -r 10.1.1.3:81 -m",
        "-a -t 10.0.0.2:80 -r 10.1.1.3:80 -m",
    ]
    assert emu.restore("\n".join(lines) + "\n").exit == 0
    assert emu.table_text() == (
        "-A -t 10.0.0.2:80 -s rr\n"
        "-a -t 10.0.0.2:80 -r 10.1.1.3:80 -m -w 1\n"
        "-a -t 10.0.0.2:80 -r 10.1.1.3:81 -m -w 1\n"
        "-a -t 10.0.0.2:80 -r 10.1.1.20:80 -m -w 2\n"
        "-A -t 10.0.0.2:443 -s rr\n"
        "-A -t 10.0.0.10:80 -s rr\n"
        "-A -u 10.0.0.1:80 -s rr\n"
        "-A --sctp-service 10.0.0.1:80 -s rr\n"
        "-A -t [2001:db8::2]:80 -s rr\n"
        "-A -f 3 -s rr\n"
        "-A -f 7 -6 -s rr\n"
    )
    assert "FWM  7 IPv6 rr\n" in emu.list_text()
    assert "SCTP 10.0.0.1:80 rr\n" in emu.list_text()


def test_persistence_default_and_bare_ipv6_gets_port_zero(emu: Emulator) -> None:
    assert emu.run("-A", "-t", "2001:db8::5", "-s", "rr", "-p").exit == 0
    assert emu.table_text() == "-A -t [2001:db8::5]:0 -s rr -p 360\n"


def test_zero_changes_nothing(example: Emulator) -> None:
    assert example.run("-Z").exit == 0
    assert example.run("-Z", "-t", "10.0.0.1:80").exit == 0
    assert example.table_text() == SAVE_EXAMPLE


def test_clear_empties_the_table(example: Emulator) -> None:
    assert example.run("-C").exit == 0
    assert example.table_text() == ""


def test_thresholds_view_and_connection_counts(example: Emulator) -> None:
    example.require_emulator()  # sets connection counts by hand
    example.run("-e", "-t", "10.0.0.1:80", "-r", "192.168.1.10:8080", "-m", "-w", "3", "-x", "9")
    example.set_connections("tcp:10.0.0.1:80", "192.168.1.10:8080", 12, 345)
    listing = example.run("-L", "-n", "--thresholds", "-t", "10.0.0.1:80").stdout
    assert listing.splitlines()[:4] == [
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
        "  -> RemoteAddress:Port",
        "TCP  10.0.0.1:80 rr",
        "  -> 192.168.1.10:8080            9          0          12         345       ",
    ]
    assert "Masq    3      12         345       \n" in example.list_text()
    # Counts survive an edit, as in the kernel.
    example.run("-e", "-t", "10.0.0.1:80", "-r", "192.168.1.10:8080", "-m", "-w", "4")
    assert "Masq    4      12         345       \n" in example.list_text()


def test_invocation_log(emu: Emulator) -> None:
    emu.run("-A", "-t", "10.0.0.1:80")
    emu.restore("-a -t 10.0.0.1:80 -r 10.1.1.1\n")
    emu.restore("")
    emu.run("-S", "-n")
    emu.run("-Z")
    invocations = emu.invocations()
    assert [i.argv for i in invocations] == [
        ["-A", "-t", "10.0.0.1:80"],
        ["-R"],
        ["-R"],
        ["-S", "-n"],
        ["-Z"],
    ]
    assert invocations[1].stdin == "-a -t 10.0.0.1:80 -r 10.1.1.1\n"
    assert [i.exit for i in invocations] == [0, 0, 0, 0, 0]
    assert [i.argv[0] for i in emu.changing_invocations()] == ["-A", "-R"]


def test_concurrent_calls_are_all_applied(emu: Emulator) -> None:
    emu.run("-A", "-t", "10.0.0.1:80")
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: emu.run("-a", "-t", "10.0.0.1:80", "-r", f"10.1.1.{i}", "-m"),
                range(1, 17),
            )
        )
    assert [r.exit for r in results] == [0] * 16
    assert emu.table_text().count("\n-a ") + emu.table_text().startswith("-a") == 16


def test_a_10000_line_batch_is_applied_whole(emu: Emulator) -> None:
    lines = ["-A -t 10.0.0.1:80 -s wrr"]
    lines += [f"-a -t 10.0.0.1:80 -r 10.1.{i // 250}.{i % 250 + 1}:80 -m -w 1" for i in range(5000)]
    lines += [f"-e -t 10.0.0.1:80 -r 10.1.{i // 250}.{i % 250 + 1}:80 -m -w 2" for i in range(5000)]
    result = emu.restore("\n".join(lines) + "\n")  # its speed: bench/kernel.py
    assert (result.exit, result.stderr) == (0, "")
    assert emu.table_text().count(" -w 2\n") == 5000


def test_weights_up_to_2147483647_are_kept(emu: Emulator) -> None:
    emu.run("-A", "-t", "10.0.0.1:80", "-s", "wrr")
    assert emu.run("-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1:80", "-m", "-w", "65536").exit == 0
    big = "2147483647"
    assert emu.run("-a", "-t", "10.0.0.1:80", "-r", "10.1.1.2:80", "-m", "-w", big).exit == 0
    assert emu.table_text() == (
        "-A -t 10.0.0.1:80 -s wrr\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 65536\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.2:80 -m -w 2147483647\n"
    )


def test_another_family_only_for_tunnel_destinations_and_it_aborts_a_batch(emu: Emulator) -> None:
    result = emu.restore(
        "-A -t 10.0.0.1:80 -s wrr\n"
        "-a -t 10.0.0.1:80 -r [2001:db8::9]:80 -m -w 1\n"
        "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 1\n"
    )
    assert (result.exit, result.stderr) == (
        2,
        "Different address family is allowed only for tunneling servers\n",
    )
    assert emu.table_text() == "-A -t 10.0.0.1:80 -s wrr\n"
    assert emu.run("-a", "-t", "10.0.0.1:80", "-r", "[2001:db8::9]:80", "-i").exit == 0
    assert "-r [2001:db8::9]:80 -i -w 1" in emu.table_text()


def test_a_destination_removed_with_connections_comes_back_with_them(example: Emulator) -> None:
    """The kernel's destination trash (seen on a real kernel, tests/kernel/README.md): removed by
    -d, -D or -C while it has connections, a destination re-added to the same service gets its
    counters back; one removed without connections, or added to another service, starts at 0."""
    example.require_emulator()  # sets connection counts by hand
    svc, rip = "tcp:10.0.0.1:80", "192.168.1.10:8080"
    readd = ["-a", "-t", "10.0.0.1:80", "-r", rip, "-m", "-w", "3"]
    example.set_connections(svc, rip, 12, 345)
    assert example.run("-d", "-t", "10.0.0.1:80", "-r", rip).exit == 0
    assert rip not in example.list_text()  # the trash is not listed
    assert example.run(*readd).exit == 0
    assert "192.168.1.10:8080            Masq    3      12         345       \n" in (
        example.list_text()
    )
    # -C and -D trash them too; a re-add takes them out of the trash (once)
    assert example.run("-C").exit == 0
    assert example.run("-A", "-t", "10.0.0.1:80", "-s", "rr").exit == 0
    assert example.run(*readd).exit == 0
    assert "Masq    3      12         345       \n" in example.list_text()
    assert example.run("-D", "-t", "10.0.0.1:80").exit == 0
    assert example.run("-A", "-t", "10.0.0.9:80", "-s", "rr").exit == 0
    assert example.run("-a", "-t", "10.0.0.9:80", "-r", rip, "-m", "-w", "3").exit == 0
    assert "Masq    3      0          0         \n" in example.list_text()  # another service
    example.set_connections("tcp:10.0.0.9:80", rip, 0, 0)
    assert example.run("-d", "-t", "10.0.0.9:80", "-r", rip).exit == 0
    assert example.run("-a", "-t", "10.0.0.9:80", "-r", rip, "-m", "-w", "3").exit == 0
    assert "Masq    3      0          0         \n" in example.list_text()  # nothing was kept
