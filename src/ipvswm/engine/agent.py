"""Agent feedback in the engine (SPEC §4, §11): what each pair's agent last said, applied (pure).

Composition, per pair (documented in docs/configuration.md): the override sets T; a check's own
percentage (exec `dynamic`) scales it, then the agent's `N%` scales that (`rules.scaled_weight`,
one implementation); reasons take the pair out whatever the agent says (rule 1); an agent's
`down` is a failure like a failing check (rule 2: the pair's check status is FAIL, with the
agent's words as the cause); `drain` holds a pair that would carry weight at 0 in phase DRAINING,
not a failure; otherwise the ramp acts on the scaled T. No answer is no opinion: the agent never
takes a pair out by itself. Until a pair's first check result since start (not fresh) the
kernel's weight is kept whatever the agent says, as for checks.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import replace

from ipvswm.checks.agentline import AgentReply
from ipvswm.config.model import AgentTarget
from ipvswm.engine.layout import Layout
from ipvswm.engine.rules import check_cause
from ipvswm.engine.rules import scaled_weight
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.events import AgentResult as AgentResult
from ipvswm.events import CheckStatus

_CARRYING = (Phase.ENABLED, Phase.RAMPING)
_RESTART = AgentReply(drain=True, word="drain", description="as before the restart")


def _effect(reply: AgentReply | None) -> tuple[int | None, bool, bool] | None:
    """What of an answer acts on weights (a new description alone changes nothing)."""
    if reply is None or not reply.opinion:
        return None
    return (reply.pct, reply.drain, reply.failed)


class AgentBook:
    """The opinion of every agent of a config, and the pairs each one feeds."""

    def __init__(
        self,
        layout: Layout,
        pairs: Mapping[PairId, PairState],
        previous: AgentBook | None = None,
    ) -> None:
        self._of: dict[PairId, AgentTarget] = {}
        self._by: dict[AgentTarget, list[PairId]] = {}
        self._unchecked: set[PairId] = set()  # pairs with an agent and no check (`-`)
        self._opinions: dict[AgentTarget, AgentReply] = {}  # only answers with an opinion
        for pid, pair in layout.pairs.items():
            if pair.agent is None:
                continue
            self._of[pid] = pair.agent
            self._by.setdefault(pair.agent, []).append(pid)
            if pair.check is None:
                self._unchecked.add(pid)
        for target, pids in self._by.items():
            if previous is not None:
                known = previous._opinions.get(target)
                if known is not None:
                    self._opinions[target] = known
            elif any(p in pairs and pairs[p].phase is Phase.DRAINING for p in pids):
                # Not persisted: a pair drained before a restart stays so until its agent answers,
                # rather than taking full weight for the moment its check passes first.
                self._opinions[target] = _RESTART

    def take(self, result: AgentResult) -> list[PairId]:
        """Record a poll; the pairs to re-evaluate (none when the opinion is the same)."""
        pids = self._by.get(result.target)
        if not pids:
            return []  # a poller of an older config still reporting
        old = self._opinions.get(result.target)
        reply = result.reply
        if reply is not None and reply.opinion:
            self._opinions[result.target] = reply
        else:
            self._opinions.pop(result.target, None)
        return pids if _effect(old) != _effect(reply) else []

    def opinion(self, pid: PairId) -> AgentReply | None:
        """What the pair's agent says, if it has an opinion."""
        target = self._of.get(pid)
        return None if target is None else self._opinions.get(target)

    def failing(self, pid: PairId) -> bool:
        """Whether the pair's agent says it is down (a pair without check is then checked)."""
        reply = self.opinion(pid)
        return reply is not None and reply.failed

    def before(self, pid: PairId, state: PairState, target: int) -> tuple[PairState, int]:
        """The pair's state and T once its agent is heard: a failure, or a scaled T."""
        if pid not in self._of:
            return state, target
        if pid in self._unchecked and state.check_status is not CheckStatus.UNKNOWN:
            state = replace(state, check_status=CheckStatus.UNKNOWN, check_cause="")  # agent's
        reply = self.opinion(pid)
        if reply is None:
            return state, target
        if reply.failed:
            return replace(state, check_status=CheckStatus.FAIL, check_cause=reply.cause()), target
        return state, scaled_weight(target, reply.pct)

    def after(self, pid: PairId, new: PairState, fresh: bool) -> PairState:
        """A pair that would carry weight, drained by its agent: 0 in DRAINING, not a failure.

        Its pending ramp is kept (it starts again when the drain ends), its running one restarts.
        """
        reply = self.opinion(pid)
        if reply is None or not reply.drain or not fresh or new.phase not in _CARRYING:
            return new
        return replace(new, weight=0, phase=Phase.DRAINING, ramp_deadline=None)

    def cause(self, result: AgentResult) -> Callable[[PairState], str]:
        """The cause of a decision taken on an agent's poll."""
        reply = result.reply if result.reply is not None and result.reply.opinion else None

        def cause(new: PairState) -> str:
            if reply is not None and (new.phase is Phase.DRAINING or reply.failed):
                return reply.cause()
            if new.phase in _CARRYING:
                if reply is not None:
                    return reply.cause()
                if result.reply is None:
                    why = f" ({result.cause})" if result.cause else ""
                    return f"agent: no answer{why}: the check alone decides"
                return "agent: up"
            if new.phase is Phase.AWAIT_PASS and new.check_status is CheckStatus.PASS:
                return "agent: no failure now; awaiting a check that began after the last one"
            return check_cause(new.check_status, new.check_cause, new)

        return cause
