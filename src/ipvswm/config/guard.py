"""Whether a valid new config may replace the running one without `force` (SPEC §2.4, §11).

A file cut short by an editor, a truncating `cat new > conf` caught half-way, or a globals-only
file is valid and would delete virtual services that carry traffic. So every reload trigger
refuses a config that would remove every VS, or more than `Config.MaxRemovedShare` of the
managed pairs; the operator applies it on purpose with `config reload force`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipvswm.config.model import Config

FORCE_HINT = (
    "to apply it anyway: 'config reload force' on the console (ipvswm ctl config reload force)"
)
_MAX_NAMED = 10  # tags named in a message


@dataclass(frozen=True, slots=True)
class Removal:
    """What a new config removes from the running one: VS tags and (vs, host) pairs."""

    vss: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    total_vss: int
    total_pairs: int

    def share(self) -> float:
        """The share of the running pairs removed (0 when there is none)."""
        return len(self.pairs) / self.total_pairs if self.total_pairs else 0.0


def removal(old: Config, new: Config) -> Removal:
    """The VSs and pairs of `old` that `new` removes.

    A pair leaves the kernel when its VS or host is gone, when the host is no longer on the VS,
    or when its VS is replaced (address, port or protocol changed: identity is by tag, and the
    old kernel service is deleted).
    """
    new_vs = {vs.tag: (vs.proto, vs.address, vs.port) for vs in new.services}
    gone = tuple(
        vs.tag for vs in old.services if new_vs.get(vs.tag) != (vs.proto, vs.address, vs.port)
    )
    replaced = set(gone)
    new_pairs = {(p.vs, p.host) for p in new.pairs()}
    old_pairs = [(p.vs, p.host) for p in old.pairs()]
    pairs = tuple(pid for pid in old_pairs if pid[0] in replaced or pid not in new_pairs)
    return Removal(gone, pairs, len(old.services), len(old_pairs))


def refusal(old: Config, new: Config) -> str | None:
    """Why applying `new` over `old` needs `force`, or None when it may be applied.

    The limit is the lower of the two files' `Config.MaxRemovedShare`: a file that raises it takes
    effect for the next reload, so a truncated file with the default can never lift it.
    """
    gone = removal(old, new)
    limit = min(old.options.config_max_removed_share, new.options.config_max_removed_share)
    if old.services and len(gone.vss) == len(old.services):
        left = "" if new.services else " (the new file has none)"
        what = (
            f"every virtual service{left}: {_named(gone.vss)}, and {len(gone.pairs)} of"
            f" {gone.total_pairs} pair(s)"
        )
    elif gone.pairs and gone.share() > limit:
        vss = f", virtual service(s) {_named(gone.vss)}" if gone.vss else ""
        names = _named(tuple(f"{v}/{h}" for v, h in gone.pairs))
        what = (
            f"{len(gone.pairs)} of {gone.total_pairs} pairs ({gone.share():.0%}, more than"
            f" Config.MaxRemovedShare={limit:g}: {names}){vss}"
        )
    else:
        return None
    return f"it would remove {what}; {FORCE_HINT}"


def problems(config: Config) -> list[str]:
    """What makes a valid file unfit to run from (`check-config`, `config check`)."""
    if not config.services:
        return [
            f"{config.path}:0: no virtual service: the file defines none (only global options?);"
            " a daemon started or reloaded with it would manage nothing"
        ]
    return []


def _named(tags: tuple[str, ...]) -> str:
    shown = ", ".join(tags[:_MAX_NAMED])
    return shown + (f", ... ({len(tags)} in all)" if len(tags) > _MAX_NAMED else "")
