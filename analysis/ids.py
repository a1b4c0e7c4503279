"""The ids users type and tap (analyses, schedules): one alphabet, lower-case letters and digits
without the look-alikes (l, o, 0, 1)."""

import secrets

ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def new_id(length: int) -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))
