"""A Lua script's declaration: its name, its named KEYS and ARGV, and the enum of its answers.

Callers pass KEYS and ARGV by keyword (`AnalysisStore._call`); the declaration puts them in the
order the script reads them. A script answers a list whose first element is a code word; it is
turned into a member of the script's answer enum, and a code the enum does not know is an error
(`UnknownAnswer`), never a silent "nothing to do". tests/test_lua_scripts.py checks each script's
header comment (`-- KEYS[1] control ...`) and its `return {'code'...}` lines against this.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

A = TypeVar("A", bound=StrEnum)


class UnknownAnswer(RuntimeError):
    """A script answered a code its declaration does not list: a bug, not a user's mistake."""


@dataclass(frozen=True)
class Answer(Generic[A]):
    """A script's code (a member of its answer enum) and the extra values it returned."""

    code: A
    values: list[str]


@dataclass(frozen=True)
class Script(Generic[A]):
    name: str
    keys: tuple[str, ...]   # a last name ending in '*' takes a list: the rest of KEYS
    argv: tuple[str, ...]   # ... and the same for ARGV
    answers: type[A]
    source: str

    def __post_init__(self) -> None:
        names = tuple(name.rstrip("*") for name in self.keys + self.argv)
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a KEYS or ARGV name is declared twice")
        if any(name.endswith("*") for name in self.keys[:-1] + self.argv[:-1]):
            raise ValueError(f"{self.name}: only the last KEYS or ARGV name may take the rest")

    def arguments(self, named: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """(KEYS, ARGV) in declared order from keyword arguments; every name exactly once."""
        expected = {name.rstrip("*") for name in self.keys + self.argv}
        if set(named) != expected:
            missing, extra = sorted(expected - set(named)), sorted(set(named) - expected)
            raise TypeError(f"{self.name}: missing {missing}, unexpected {extra}")
        return _in_order(self.keys, named), _in_order(self.argv, named)

    def bind(self, client: object) -> "Bound[A]":
        """The script registered on a Redis client, called with its KEYS and ARGV by name."""
        return Bound(self, client.register_script(self.source))  # type: ignore[attr-defined]

    def answer(self, raw: object) -> Answer[A]:
        """The script's reply as an Answer; UnknownAnswer for a code the declaration lacks."""
        items = raw if isinstance(raw, list) else [raw]
        words = [item.decode() if isinstance(item, bytes) else str(item) for item in items]
        try:
            code = self.answers(words[0])
        except ValueError:
            known = ", ".join(member.value for member in self.answers)
            raise UnknownAnswer(f"{self.name} answered {words[0]!r}, not one of {known}") from None
        return Answer(code, words[1:])


@dataclass(frozen=True)
class Bound(Generic[A]):
    """A script registered on a client: call it, or queue it on a pipeline (MULTI) and turn its
    raw result from `pipe.execute()` into an Answer with `script.answer(raw)`."""

    script: Script[A]
    registered: Any

    def __call__(self, **named: Any) -> Answer[A]:
        keys, args = self.script.arguments(named)
        return self.script.answer(self.registered(keys=keys, args=args))

    async def call_async(self, **named: Any) -> Answer[A]:
        """The same call, on a script bound to an asyncio client (redis.asyncio; the bot's)."""
        keys, args = self.script.arguments(named)
        return self.script.answer(await self.registered(keys=keys, args=args))

    def queue(self, pipe: Any, **named: Any) -> None:
        keys, args = self.script.arguments(named)
        self.registered(keys=keys, args=args, client=pipe)


def _in_order(names: tuple[str, ...], named: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    for name in names:
        if name.endswith("*"):
            rest = named[name.rstrip("*")]
            assert isinstance(rest, list), f"{name} takes a list"
            values += rest
        else:
            values.append(named[name])
    return values
