"""An aiosmtpd handler that keeps the mail it receives, for alert tests."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any


class Inbox:
    """aiosmtpd handler keeping what it received."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.content, _class=EmailMessage, policy=default_policy)
            for e in list(self.envelopes)
        ]

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages()]
