"""Lifecycles as data: `(state, action) -> new state`, with guards.

Each stateful object declares one `StateMachine`. Workflows call `machine.apply(...)`
to move an object; the API lists `machine.available(...)` so clients never hard-code it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ordergraph.workflows.errors import ErrorCode, TransitionError

Guard = Callable[[Any], str | None]  # returns a refusal reason, or None when allowed


@dataclass
class StateMachine:
    name: str
    table: dict[tuple[str, str], str]
    guards: dict[str, Guard] = field(default_factory=dict)
    state_attr: str = "status"

    def actions_from(self, state: str) -> list[str]:
        return [action for (s, action) in self.table if s == state]

    def available(self, obj: Any, context: Any = None) -> list[str]:
        state = str(getattr(obj, self.state_attr))
        return [a for a in self.actions_from(state) if self._refusal(a, obj, context) is None]

    def _refusal(self, action: str, obj: Any, context: Any) -> str | None:
        guard = self.guards.get(action)
        return guard(context if context is not None else obj) if guard else None

    def target(self, obj: Any, action: str, context: Any = None) -> str:
        """The state `action` leads to, or a TransitionError naming what is allowed."""
        state = str(getattr(obj, self.state_attr))
        new_state = self.table.get((state, action))
        allowed = self.available(obj, context)
        if new_state is None:
            raise TransitionError(
                ErrorCode.INVALID_TRANSITION,
                f"Cannot {action} a {self.name} in state {state}; allowed: {', '.join(allowed) or 'none'}",
                None,
                {},
                state,
                allowed,
            )
        refusal = self._refusal(action, obj, context)
        if refusal is not None:
            raise TransitionError(
                ErrorCode.INVALID_TRANSITION,
                f"Cannot {action} this {self.name}: {refusal}",
                None,
                {},
                state,
                allowed,
            )
        return new_state

    def states_with(self, action: str) -> Iterable[str]:
        return [s for (s, a) in self.table if a == action]
