"""Entry points: `ipvswm` with subcommands, and `ipvs-weightman` with the original flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEFAULT_CONFIG = "/etc/ipvs-weightman.conf"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


def _not_available(name: str) -> int:
    print(f"ipvswm: '{name}' is not available yet in this version", file=sys.stderr)
    return EXIT_USAGE


def cmd_check_config(args: argparse.Namespace) -> int:
    """Parse and validate a config file; print every error, or a one-line summary."""
    from ipvswm.config.parser import parse_file, summarize

    result = parse_file(args.config)
    for error in result.errors:
        print(error)
    if result.config is None:
        print(f"{args.config}: {len(result.errors)} error(s), configuration is NOT valid")
        return EXIT_FAILED
    print(f"{args.config}: OK: {summarize(result.config)}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipvswm", description="Health-check IPVS real servers and set their weights."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file")
        return p

    run = with_config(sub.add_parser("run", help="run the daemon"))
    run.add_argument("--foreground", "-f", action="store_true", help="do not daemonise")
    run.add_argument("--backend", choices=["ipvsadm", "netlink", "dry-run"], default=None)
    run.add_argument("--pid-file", default=None)

    with_config(sub.add_parser("check-config", help="validate a config file"))
    with_config(sub.add_parser("console", help="interactive console to the running daemon"))
    ctl = with_config(sub.add_parser("ctl", help="run one console command"))
    ctl.add_argument("--json", action="store_true", help="reply as JSON")
    ctl.add_argument("words", nargs=argparse.REMAINDER, help="the console command")
    with_config(sub.add_parser("dump", help="print the persistent state"))
    demo = sub.add_parser("demo", help="a self-contained live demo (dry-run backend)")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`ipvswm` entry point."""
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return cmd_check_config(args)
    return _not_available(args.command)


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
