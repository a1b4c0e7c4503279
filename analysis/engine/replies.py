"""Redis replies as Python text: the clients here return bytes (decode_responses off), and the
type of a reply says bytes or str, so every reader decodes through these."""

from collections.abc import Iterable
from typing import Any


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def text_or_none(value: Any) -> str | None:
    return None if value is None else text(value)


def texts(values: Iterable[Any]) -> list[str]:
    return [text(value) for value in values]
