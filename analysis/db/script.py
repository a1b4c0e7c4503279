"""A Lua script's declaration: its name, its named KEYS and ARGV, and the enum of its answers.

Callers pass KEYS and ARGV by keyword (`AnalysisStore._call`); the declaration puts them in the
order the script reads them, and generates the Lua preamble that names them
(`local gist = KEYS[2]`), so a body reads its keys and arguments by name and never by number.
A name ending in '*' takes the rest of KEYS or ARGV: the body gets it as a Lua list
(`local pending = {}` filled from ARGV[5] on).

A script answers a list whose first element is a code word; it is turned into a member of the
script's answer enum, and a code the enum does not know is an error (`UnknownAnswer`), never a
silent "nothing to do". tests/test_lua_scripts.py checks every body and its answers.
"""

import re
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
    keys: tuple[str, ...]  # a last name ending in '*' takes a list: the rest of KEYS
    argv: tuple[str, ...]  # ... and the same for ARGV
    answers: type[A]
    body: str  # reads KEYS and ARGV only through the names the preamble declares
    prologue: str = ""  # shared Lua functions the body calls (analysis/db/scripts/prologue.py)
    allow_oom: bool = False  # runs even at Redis's memory limit (the '#!lua flags=allow-oom' line)

    def __post_init__(self) -> None:
        names = tuple(name.rstrip("*") for name in self.keys + self.argv)
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a KEYS or ARGV name is declared twice")
        if any(name.endswith("*") for name in self.keys[:-1] + self.argv[:-1]):
            raise ValueError(f"{self.name}: only the last KEYS or ARGV name may take the rest")
        unfit = [name for name in names if not LUA_NAME.fullmatch(name) or name in LUA_TAKEN]
        if unfit:
            raise ValueError(f"{self.name}: {unfit} cannot name a Lua local")

    @property
    def preamble(self) -> str:
        """The Lua that names KEYS and ARGV: `local name = KEYS[i]`, a list for a '*' name."""
        return "".join(_locals(self.keys, "KEYS") + _locals(self.argv, "ARGV"))

    @property
    def source(self) -> str:
        """The whole script Redis runs: flags, the named KEYS and ARGV, the prologue, the body."""
        flags = "#!lua flags=allow-oom\n" if self.allow_oom else ""
        return flags + self.preamble + self.prologue + self.body

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


# Lua identifiers, less the words Lua keeps for itself (a generated `local end` would not load)
# and the globals scripts call (a `local table` would hide `table.insert` from the body).
LUA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LUA_TAKEN = frozenset(
    {
        "and",
        "break",
        "do",
        "else",
        "elseif",
        "end",
        "false",
        "for",
        "function",
        "if",
        "in",
        "local",
        "nil",
        "not",
        "or",
        "repeat",
        "return",
        "then",
        "true",
        "until",
        "while",
        "KEYS",
        "ARGV",
        "redis",
        "table",
        "string",
        "math",
        "cjson",
        "tonumber",
        "tostring",
        "unpack",
        "ipairs",
        "pairs",
        "next",
        "type",
        "select",
        "error",
        "pcall",
        "assert",
    }
)


def _locals(names: tuple[str, ...], table: str) -> list[str]:
    lines = []
    for index, name in enumerate(names, start=1):
        if name.endswith("*"):
            rest = name.rstrip("*")
            lines.append(
                f"local {rest} = {{}}  -- {table}[{index}..]\n"
                f"for i = {index}, #{table} do {rest}[#{rest} + 1] = {table}[i] end\n"
            )
        else:
            lines.append(f"local {name} = {table}[{index}]\n")
    return lines


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
