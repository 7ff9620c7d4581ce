"""Presence: how many subscriptions a topic has open, and the distinct subjects among them.

`Presence` counts this process's subscriptions; it is the memory broker's presence as it is
(this process is all there is: exact and immediate). The Redis one (`redis_presence.py`) adds
what every other process holds.

A subscription counts from the moment it starts reading until it closes (`subscription.py`);
one without a subject counts in `subscribers` but is no subject. A subscription may also watch
its topic's subjects: it then gets `event: join` for each subject present when it starts, then
`join` / `leave` (`{"sub": subject}`) whenever a subject's first subscription opens or its last
closes. These are notices (no `id:` line), so they are not part of the topic's history and leave
a client's Last-Event-ID alone.

Shared by every greenlet of the process; nothing here blocks or switches but `headcount` of a
backend that asks Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streaming.mailbox import Mailbox

from .events import Notice

HEARTBEAT_SECONDS = 15.0
"""The server's default HEARTBEAT_SECONDS, which a shared backend's refresh is paced by."""
ANONYMOUS = ""
"""The key subscriptions without a subject are counted under (an empty subject is none)."""

Counts = dict[str, int]
"""Subject (ANONYMOUS for none) → open subscriptions."""


@dataclass(frozen=True, slots=True)
class Attendance:
    """How a subscription counts in its topic's presence: its subject, and whether it is told
    of joins and leaves."""

    subject: str | None = None
    events: bool = False


@dataclass(frozen=True, slots=True)
class Headcount:
    """A topic's presence: open subscriptions, and the distinct subjects among them (sorted)."""

    subscribers: int
    subjects: tuple[str, ...]

    @classmethod
    def of(cls, counts: Iterable[Counts]) -> Headcount:
        """The sum of several processes' counts."""
        subscribers, subjects = 0, set()
        for each in counts:
            subscribers += sum(each.values())
            subjects.update(subject for subject, n in each.items() if n > 0)
        subjects.discard(ANONYMOUS)
        return cls(subscribers, tuple(sorted(subjects)))

    def as_json(self) -> dict:
        return {"subscribers": self.subscribers, "subjects": list(self.subjects)}


def join_notice(subject: str) -> Notice:
    return Notice.of("join", {"sub": subject})


def leave_notice(subject: str) -> Notice:
    return Notice.of("leave", {"sub": subject})


class Presence:
    """This process's subscriptions per topic by subject, and the mailboxes watching them."""

    def __init__(self) -> None:
        self._local: dict[str, Counts] = {}
        self._watchers: dict[str, set[Mailbox]] = {}
        self._announced: dict[str, frozenset[str]] = {}  # what each topic's watchers were told

    def enter(self, topic: str, subject: str | None) -> None:
        """A subscription to `topic` opened."""
        counts = self._local.setdefault(topic, {})
        key = subject or ANONYMOUS
        counts[key] = counts.get(key, 0) + 1
        self._changed(topic)

    def leave(self, topic: str, subject: str | None) -> None:
        """A subscription that `enter`ed `topic` closed."""
        counts = self._local.get(topic, {})
        key = subject or ANONYMOUS
        left = counts.get(key, 0) - 1
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)
            if not counts:
                self._local.pop(topic, None)
        self._changed(topic)

    def headcount(self, topic: str) -> Headcount:
        """`topic`'s presence now (BrokerUnavailable if a shared backend cannot be reached)."""
        return Headcount.of([self._local.get(topic, {})])

    def watch(self, topic: str, mailbox: Mailbox) -> None:
        """Put a join for each subject present into `mailbox`, then joins and leaves as they
        happen, until `unwatch`."""
        watchers = self._watchers.setdefault(topic, set())
        if not watchers:
            self._announced[topic] = self._subjects(topic)
        watchers.add(mailbox)
        present = self._announced[topic]
        if present:
            mailbox.put([join_notice(subject) for subject in sorted(present)])

    def unwatch(self, topic: str, mailbox: Mailbox) -> None:
        watchers = self._watchers.get(topic)
        if watchers is None:
            return
        watchers.discard(mailbox)
        if not watchers:
            del self._watchers[topic]
            self._announced.pop(topic, None)
            self._unwatched(topic)

    def close(self) -> None:
        """Give up what this process holds in a shared backend."""

    def local_counts(self, topic: str) -> Counts:
        """This process's counts for `topic` (a copy)."""
        return dict(self._local.get(topic, {}))

    def _subjects(self, topic: str) -> frozenset[str]:
        """The subjects present in `topic`, as far as this process knows."""
        return frozenset(self._local.get(topic, {})) - {ANONYMOUS}

    def _changed(self, topic: str) -> None:
        """This process's counts for `topic` changed."""
        self._announce(topic)

    def _unwatched(self, topic: str) -> None:
        """Nobody in this process watches `topic` any more."""

    def _announce(self, topic: str) -> None:
        """Tell `topic`'s watchers which subjects left and which joined since they were told."""
        watchers = self._watchers.get(topic)
        if not watchers:
            return
        before, now = self._announced[topic], self._subjects(topic)
        if before == now:
            return
        self._announced[topic] = now
        notices = ([leave_notice(subject) for subject in sorted(before - now)]
                   + [join_notice(subject) for subject in sorted(now - before)])
        for mailbox in list(watchers):
            mailbox.put(notices)
