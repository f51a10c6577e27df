"""Entry points: `ipvswm` with subcommands, and `ipvs-weightman` with the original flags."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ipvswm.config.model import GlobalOptions

DEFAULT_CONFIG = "/etc/ipvs-weightman.conf"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


def cmd_check_config(args: argparse.Namespace) -> int:
    """Parse and validate a config file; print every error, or a one-line summary."""
    from ipvswm.config.filecheck import insecure_reason
    from ipvswm.config.guard import problems
    from ipvswm.config.parser import parse_file
    from ipvswm.config.parser import summarize

    _warnings_to_stderr()
    result = parse_file(args.config)
    insecure = None if args.allow_insecure_config else insecure_reason(args.config)
    if insecure is not None:
        print(insecure)
        print(f"{args.config}: configuration is NOT safe to run")
        return EXIT_FAILED
    errors = result.messages() if result.config is None else problems(result.config)
    for line in errors:
        print(line)
    if result.config is None or errors:
        count = result.error_count() if result.config is None else len(errors)
        print(f"{args.config}: {count} error(s), configuration is NOT valid")
        return EXIT_FAILED
    needs = run_needs(result.config.options)
    for need in needs:
        print(f"{args.config}: {need}")
    if needs:
        print(f"{args.config}: {len(needs)} error(s): `run` would not work as configured")
        return EXIT_FAILED
    print(f"{args.config}: OK: {summarize(result.config)}")
    return EXIT_OK


def run_needs(opts: GlobalOptions) -> list[str]:
    """What `run` will need beyond a valid file: the DB's and the log's directories."""
    problems = []
    for key, path in (("DB", opts.db), ("Log.Path", opts.log_path)):
        if not path:
            continue
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            problems.append(f"{key}={path}: directory {directory} does not exist")
        elif not os.access(directory, os.W_OK | os.X_OK) and not os.path.exists(path):
            problems.append(f"{key}={path}: directory {directory} is not writable")
    return problems


class _LabelledStderr(logging.Handler):
    """Writes `warning: …` to the *current* sys.stderr (it may be replaced after set-up)."""

    ipvswm_warnings = True

    def emit(self, record: logging.LogRecord) -> None:
        label = "warning" if record.levelno < logging.ERROR else "error"
        print(f"{label}: {record.getMessage()}", file=sys.stderr)


def _warnings_to_stderr() -> None:
    """Print the parser's warnings as `warning: …` so they do not read like errors."""
    logger = logging.getLogger("ipvswm.config")
    if not any(isinstance(h, _LabelledStderr) for h in logger.handlers):
        # Propagation stays: with a handler here, logging's last-resort printer stays silent.
        logger.addHandler(_LabelledStderr(logging.WARNING))


def cmd_run(args: argparse.Namespace) -> int:
    """Validate the config, check no other daemon answers, detach (unless --foreground), run."""
    import asyncio

    from ipvswm.config.filecheck import insecure_reason
    from ipvswm.config.parser import parse_file
    from ipvswm.daemon.daemon import Daemon
    from ipvswm.daemonize import daemonize
    from ipvswm.daemonize import fail
    from ipvswm.daemonize import running_instance

    insecure = None if args.allow_insecure_config else insecure_reason(args.config)
    if insecure is not None:
        return fail(f"{insecure}; not starting")
    result = parse_file(args.config)
    if result.config is None:
        for line in result.messages():
            print(line, file=sys.stderr)
        return fail(f"{args.config} is not valid; not starting")
    opts = result.config.options
    other = running_instance(
        opts.management_socket_path or None,
        (opts.management_socket_ip, opts.management_socket_port),
    )
    if other is not None:
        return fail(f"not starting: {other}")
    config_path = os.path.abspath(args.config)  # a daemon works from "/": reloads need it
    if not args.foreground:
        daemonize(os.path.abspath(args.pid_file) if args.pid_file else None)
    daemon = Daemon(
        config_path,
        result.config,
        foreground=args.foreground,
        backend=args.backend,
        force=args.force,
    )
    return asyncio.run(daemon.run())


def cmd_dump(args: argparse.Namespace) -> int:
    """Print the persistent state (the original's --dump)."""
    from ipvswm.config.parser import parse_file
    from ipvswm.store import StoreError
    from ipvswm.store import dump_file

    result = parse_file(args.config)
    if result.config is None:
        for line in result.messages():
            print(line, file=sys.stderr)
        return EXIT_USAGE
    try:
        print(dump_file(result.config.options.db), end="")
    except StoreError as exc:
        print(f"ipvswm: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


CTL_EPILOG = """exit status:
  0  the command worked
  1  the command failed (e.g. an unknown host)
  2  usage error, or the daemon cannot be reached
  3  a 'wait' timed out"""


def build_parser() -> argparse.ArgumentParser:
    """The `ipvswm` command line; also the source of the man page (docs/ipvswm.8)."""
    from ipvswm import __version__

    parser = argparse.ArgumentParser(
        prog="ipvswm", description="Health-check IPVS real servers and set their weights."
    )
    parser.add_argument("--version", action="version", version=f"ipvswm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)"
        )
        return p

    run = with_config(sub.add_parser("run", help="run the daemon"))
    run.add_argument("--foreground", "-f", action="store_true", help="do not daemonise")
    run.add_argument(
        "--backend",
        choices=["ipvsadm", "netlink", "dry-run"],
        default=None,
        help="how to reach the kernel's IPVS table: ipvsadm (the default, the binary named by"
        " IPVSADM), netlink (generic netlink, no subprocess), dry-run (in memory, logs every"
        " operation)",
    )
    run.add_argument(
        "--pid-file",
        default=None,
        metavar="PATH",
        help="write the daemon's pid here after detaching; removed when it exits (default: none)",
    )
    insecure_help = "accept a config file writable by group/others or owned by another user"
    run.add_argument("--allow-insecure-config", action="store_true", help=insecure_help)
    run.add_argument(
        "--force",
        action="store_true",
        help="start even if the file would remove every virtual service ipvswm manages in the"
        " kernel, or more than Config.MaxRemovedShare of their destinations (refused otherwise)",
    )

    check = with_config(sub.add_parser("check-config", help="validate a config file"))
    check.add_argument("--allow-insecure-config", action="store_true", help=insecure_help)
    with_config(sub.add_parser("console", help="interactive console to the running daemon"))
    ctl = with_config(
        sub.add_parser(
            "ctl",
            help="run one console command",
            epilog=CTL_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    ctl.add_argument("--json", action="store_true", help="reply as JSON")
    ctl.add_argument(
        "--names",
        choices=["hosts", "vs"],
        default=None,
        help="print the running daemon's host or VS tags, one a line, and nothing on failure"
        " (for shell completion)",
    )
    ctl.add_argument("words", nargs=argparse.REMAINDER, help="the console command")
    with_config(sub.add_parser("dump", help="print the persistent state"))
    top = with_config(
        sub.add_parser("top", help="a live view of every VS and pair in the terminal")
    )
    top.add_argument(
        "--url", default=None, help="the /status URL (default: from the config's Metrics.Listen)"
    )
    top.add_argument(
        "--interval", type=float, default=1.0, help="seconds between refreshes (default: 1)"
    )
    top.add_argument("--vs", default="", help="show only this VS (key f changes it)")
    demo = sub.add_parser("demo", help="a self-contained live demo (dry-run backend)")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`ipvswm` entry point; a reader that goes away (`| head`) ends it quietly."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # Python would print a traceback on the final flush: point stdout at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return cmd_check_config(args)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "dump":
        return cmd_dump(args)
    if args.command == "ctl":
        from ipvswm.console.client import ctl_main

        if args.names is not None:
            from ipvswm.console.client import names_main

            return names_main(args.config, args.names)
        words = [w for w in args.words if w != "--"]
        if not words:
            print("ipvswm ctl: a console command is needed (e.g. 'show hosts')", file=sys.stderr)
            return EXIT_USAGE
        return ctl_main(args.config, words, args.json)
    if args.command == "console":
        from ipvswm.console.client import console_main

        return console_main(args.config)
    if args.command == "top":
        from ipvswm.top import top_main

        return top_main(args.config, args.url, args.interval, args.vs)
    assert args.command == "demo", args.command  # argparse accepts no other command
    from ipvswm.demo import demo_main

    return demo_main(args.duration)


def legacy_main(argv: Sequence[str] | None = None) -> int:
    """`ipvs-weightman` entry point with the original's flags."""
    parser = argparse.ArgumentParser(prog="ipvs-weightman", add_help=False)
    parser.add_argument("--nofork", action="store_true")
    parser.add_argument("--console", action="store_true")
    parser.add_argument("--dump", action="store_true")
    parser.add_argument("-c", dest="config", default=DEFAULT_CONFIG)
    parser.add_argument("-h", "--help", action="store_true")
    args = parser.parse_args(argv)
    if args.help:
        parser.print_usage()
        print("  --nofork   stay in the foreground\n  --console  open a console session")
        print("  --dump     print the persistent state\n  -c FILE    config file")
        return EXIT_OK
    if args.console:
        return main(["console", "-c", args.config])
    if args.dump:
        return main(["dump", "-c", args.config])
    return main(["run", "-c", args.config, *(["--foreground"] if args.nofork else [])])


if __name__ == "__main__":
    sys.exit(main())
