"""Who is in the sandbox: the bot's user id, three users (a trader, a second trader, an admin) and
one group chat. `make run` makes the admin an admin of the bot (ADMIN_USER_IDS). The bot's token
is made per run (sandbox/launch.py), never fixed here: a public token would let any page post as
the bot."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Person:
    """A user the chat page can speak as."""

    key: str
    first_name: str
    role: str
    user_id: int
    username: str


@dataclasses.dataclass(frozen=True)
class Cast:
    bot_id: int
    people: tuple[Person, ...]
    group_id: int
    group_title: str

    @property
    def admin_ids(self) -> list[int]:
        return [p.user_id for p in self.people if p.role == "admin"]

    def person(self, user_id: int) -> Person | None:
        return next((p for p in self.people if p.user_id == user_id), None)

    def may_write(self, user_id: int, chat_id: int) -> bool:
        """A person writes in their own private chat with the bot and in the group."""
        return self.person(user_id) is not None and chat_id in (user_id, self.group_id)


SANDBOX_CAST = Cast(
    # A stable id: the bot's event consumer group and update ledger are per bot id.
    bot_id=7000000001,
    people=(
        Person("trader", "Alice", "trader", 710001, "alice_trader"),
        Person("second", "Bob", "second trader", 710002, "bob_trader"),
        Person("admin", "Carol", "admin", 710003, "carol_admin"),
    ),
    group_id=-1001000000001,
    group_title="Traders' room (group)",
)
