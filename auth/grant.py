"""What a request may do: a verified token's claims, or everything while auth is off."""

from __future__ import annotations

from dataclasses import dataclass

from .ownership import owned_by
from .patterns import ChannelPattern, any_matches

CHAT, TASKS, LOGS, ADMIN = "chat", "tasks", "logs", "admin"
SCOPES = frozenset({CHAT, TASKS, LOGS, ADMIN})


@dataclass(frozen=True, slots=True)
class Grant:
    """A bearer's rights. `admin` reaches every channel, task and generation; it does not
    stand in for the `chat`, `tasks` or `logs` scopes."""

    subject: str | None
    subscribe: tuple[ChannelPattern, ...] = ()
    publish: tuple[ChannelPattern, ...] = ()
    scopes: frozenset[str] = frozenset()
    expires_at: float | None = None
    """Unix time the token ends at (`exp`): streams opened with it end then."""
    unrestricted: bool = False
    """Auth is off: every right, no subject, no end."""

    def has_scope(self, scope: str) -> bool:
        return self.unrestricted or scope in self.scopes

    @property
    def admin(self) -> bool:
        return self.unrestricted or ADMIN in self.scopes

    def may_subscribe(self, channel: str) -> bool:
        return self.admin or any_matches(self.subscribe, channel, self.subject)

    def may_publish(self, channel: str) -> bool:
        return self.admin or any_matches(self.publish, channel, self.subject)

    def owns(self, resource_id: str) -> bool:
        """Whether this bearer may watch, read, resume or cancel the task or generation
        `resource_id` (`ownership.new_owned_id`)."""
        return self.admin or (self.subject is not None and owned_by(resource_id, self.subject))


UNRESTRICTED = Grant(subject=None, unrestricted=True)
"""The grant of every request while auth is off."""
