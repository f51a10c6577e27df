"""ipvswm(8) from the same source as `--help`: the argparse parser of cli.py (issue 15 item 4).

`python -m ipvswm.manpage > docs/ipvswm.8` regenerates it; a test keeps the file in sync.
"""

from __future__ import annotations

import argparse

from ipvswm import __version__

EXIT_STATUS = (
    ("0", "the command worked (ctl: the console command succeeded)"),
    ("1", "it failed (an invalid config, an unknown host, the daemon refused)"),
    ("2", "usage error, or the daemon cannot be reached"),
    ("3", "ctl: a wait timed out"),
)


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        ("\\&" + line) if line.startswith((".", "'")) else line for line in text.split("\n")
    )


def _options(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if not action.option_strings:
            name = action.metavar or action.dest
            out += [".TP", f"\\fI{_roff(str(name))}\\fR"]
        else:
            flags = ", ".join(f"\\fB{_roff(flag)}\\fR" for flag in action.option_strings)
            if action.nargs != 0:
                flags += f" \\fI{_roff(str(action.metavar or action.dest.upper()))}\\fR"
            out += [".TP", flags]
        helptext = (action.help or "") % {"default": action.default, "prog": parser.prog}
        if action.choices:
            helptext += f" (one of: {', '.join(map(str, action.choices))})"
        out.append(_roff(helptext))
    return out


def render(parser: argparse.ArgumentParser) -> str:
    """The man page of `parser` (its subcommands, options and helps) in man(7) roff."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    lines = [
        f'.TH IPVSWM 8 "" "ipvswm {__version__}" "System Administration"',
        ".SH NAME",
        "ipvswm \\- " + _roff(parser.description or ""),
        ".SH SYNOPSIS",
        f"\\fBipvswm\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]  ({', '.join(sub.choices)})",
        ".SH DESCRIPTION",
        "ipvswm health\\-checks every real server behind every IPVS virtual service and sets"
        " their weights. The manual is in docs/ (configuration.md, console.md, operations.md).",
        ".SH OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
    ]
    for name, child in sub.choices.items():
        lines += [".SS " + _roff(f"ipvswm {name}"), _roff(helps.get(name) or "")]
        # Whitespace collapsed: argparse wraps usage to the terminal's width.
        lines += [".PP", _roff(" ".join(child.format_usage().removeprefix("usage: ").split()))]
        lines += _options(child)
        if child.epilog:
            lines += [".PP", ".nf", _roff(child.epilog), ".fi"]
    lines += [".SH EXIT STATUS"]
    for code, text in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _roff(text)]
    lines += [
        ".SH FILES",
        ".TP",
        "\\fI/etc/ipvs\\-weightman.conf\\fR",
        "the default config file",
        ".SH SEE ALSO",
        "\\fBipvsadm\\fR(8), docs/configuration.md, docs/console.md, docs/operations.md",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    from ipvswm.cli import build_parser

    print(render(build_parser()), end="")


if __name__ == "__main__":
    main()
