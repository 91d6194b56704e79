"""From events to conversation turns: pure functions, no Kafka, no Qdrant.

A turn is what memory keeps of one side of an exchange: the user's message or the finished
answer to it. Its Qdrant point id is derived from the message id and the role, so a
redelivered event (or a second attempt's answer) overwrites the stored turn instead of
adding a duplicate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from tidings.common.events import Event, ResponseDone, UserMessage

Role = Literal["user", "assistant"]

# Fixed namespace for uuid5 point ids: changing it would orphan every stored turn.
TURN_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-5b7a-9c41-2e7d5f0b8a13")
_ROLE_ORDER: dict[str, int] = {"user": 0, "assistant": 1}


def turn_point_id(message_id: str, role: Role) -> str:
    """The deterministic Qdrant point id of the `role` turn of message `message_id`."""
    return str(uuid.uuid5(TURN_NAMESPACE, f"{message_id}:{role}"))


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored side of an exchange, with everything the Qdrant payload holds."""

    role: Role
    session_id: str
    message_id: str
    text: str
    ts: datetime
    user: str | None = None
    source: str | None = None
    model: str | None = None
    attempt: str | None = None

    @property
    def point_id(self) -> str:
        """Deterministic id: the same message and role always map to the same point."""
        return turn_point_id(self.message_id, self.role)

    @property
    def partner_point_id(self) -> str:
        """The point id of the other side of the same exchange."""
        return turn_point_id(self.message_id, "assistant" if self.role == "user" else "user")

    def with_user(self, user: str | None) -> Turn:
        """A copy attributed to `user`."""
        return replace(self, user=user)

    def payload(self) -> dict[str, Any]:
        """The Qdrant payload: ids for filtering, the text, and the time twice.

        `ts` is ISO 8601 for people and APIs; `ts_epoch` (seconds) is what range filters
        and ordering use.
        """
        payload: dict[str, Any] = {
            "session_id": self.session_id,
            "user": self.user,
            "role": self.role,
            "text": self.text,
            "ts": self.ts.isoformat(),
            "ts_epoch": self.ts.timestamp(),
            "message_id": self.message_id,
        }
        if self.role == "assistant":
            payload |= {"source": self.source, "model": self.model, "attempt": self.attempt}
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Turn:
        """Rebuild a turn from a stored payload (the inverse of `payload`)."""
        return cls(
            role=payload["role"],
            session_id=payload["session_id"],
            message_id=payload["message_id"],
            text=payload["text"],
            ts=datetime.fromisoformat(payload["ts"]),
            user=payload.get("user"),
            source=payload.get("source"),
            model=payload.get("model"),
            attempt=payload.get("attempt"),
        )

    def sort_key(self) -> tuple[float, int]:
        """Time order; a question sorts before its answer if their times tie."""
        return (self.ts.timestamp(), _ROLE_ORDER[self.role])


def turn_from_event(event: Event) -> Turn | None:
    """The turn an event records, or None for events memory does not keep.

    Only user messages and finished answers are turns; answer starts, deltas and errors
    are not (a delta is a fragment of the final text, which `response.done` carries).
    """
    if isinstance(event, UserMessage):
        return Turn(
            role="user",
            session_id=event.session_id,
            message_id=event.message_id,
            text=event.text,
            ts=event.ts,
            user=event.user,
        )
    if isinstance(event, ResponseDone):
        return Turn(
            role="assistant",
            session_id=event.session_id,
            message_id=event.message_id,
            text=event.text,
            ts=event.ts,
            source=event.source,
            model=event.model,
            attempt=event.attempt,
        )
    return None
