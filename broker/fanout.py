"""`Fanout`: which mailboxes of this process follow which topic, and delivery to them.

Both backends deliver through it: the memory broker from the publishing greenlet, the Redis
backend from its one reader greenlet. Nothing here blocks or switches greenlets, so a delivery
reaches every mailbox of a topic before anything else runs, and a mailbox added meanwhile
cannot see half of it.
"""

from __future__ import annotations

from streaming.mailbox import Mailbox

from .events import Event, Notice


class Fanout:
    """Topic → the mailboxes following it. Shared by a process's greenlets; never blocks."""

    __slots__ = ("_topics",)

    def __init__(self) -> None:
        self._topics: dict[str, set[Mailbox]] = {}

    def add(self, topic: str, mailbox: Mailbox) -> bool:
        """Follow `topic` with `mailbox`; True if no mailbox followed it before."""
        mailboxes = self._topics.get(topic)
        if mailboxes is None:
            self._topics[topic] = {mailbox}
            return True
        mailboxes.add(mailbox)
        return False

    def remove(self, topic: str, mailbox: Mailbox) -> bool:
        """Stop following; True if that was the topic's last mailbox."""
        mailboxes = self._topics.get(topic)
        if mailboxes is None or mailbox not in mailboxes:
            return False
        mailboxes.discard(mailbox)
        if mailboxes:
            return False
        del self._topics[topic]
        return True

    def __contains__(self, topic: str) -> bool:
        return topic in self._topics

    def topics(self) -> list[str]:
        return list(self._topics)

    def subscribers(self) -> int:
        return sum(map(len, self._topics.values()))

    def deliver(self, topic: str, events: list[Event]) -> None:
        """Hand `events` (one list, shared) to every mailbox following `topic`.

        A mailbox that overflows closes itself; its subscription then stops following.
        """
        for mailbox in list(self._topics.get(topic, ())):
            mailbox.put(events)

    def fail_all(self, notice: Notice) -> None:
        """End every subscription with `notice` (the broker is unreachable)."""
        topics, self._topics = self._topics, {}
        for mailboxes in topics.values():
            for mailbox in mailboxes:
                mailbox.close(notice)
