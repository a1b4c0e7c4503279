"""What a trader typed, checked before it goes anywhere: market symbols, and a prompt the LLM judge
will read (no control, text-direction nor invisible characters: the judge must read what the
trader and the card show)."""

import re
import unicodedata

from analysis.errors import InvalidConfig, quoted
from analysis.invisible import invisible_character

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,15}/[A-Z0-9]{2,10}$")


def normalize_symbol(text: str, quote: str = "USDT") -> str:
    """'btc', 'BTC-USDT', 'btc_usdt' and 'BTC/USDT' all mean 'BTC/USDT' (with quote USDT)."""
    symbol = text.strip().upper().replace("-", "/").replace("_", "/")
    if "/" not in symbol:
        symbol += "/" + quote
    if not SYMBOL_PATTERN.match(symbol):
        raise InvalidConfig(f"{quoted(text)} is not a market symbol (write it like BTC/USDT)")
    return symbol


def check_prompt(prompt: str, limit: int) -> str:
    """The prompt as the judge will read it (NFC, trimmed), or InvalidConfig saying what is
    wrong: not text, over `limit` characters, control, text-direction or invisible characters."""
    if not isinstance(prompt, str):
        raise InvalidConfig("the prompt must be text")
    if any(unicodedata.category(ch) == "Cs" for ch in prompt):
        # Lone surrogates: how Python hands over bytes that were not UTF-8 (a CLI argument).
        raise InvalidConfig("the prompt is not valid UTF-8 text; send plain text")
    prompt = unicodedata.normalize("NFC", prompt).strip()
    if len(prompt) > limit:
        raise InvalidConfig(f"the prompt is {len(prompt)} characters; the limit is {limit}")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in prompt):
        raise InvalidConfig("the prompt contains control characters; send plain text")
    if any(ch in BIDI_CONTROLS for ch in prompt):
        # They can make a card read differently from what was typed.
        raise InvalidConfig("the prompt contains invisible text-direction characters; send plain text")
    hidden = invisible_character(prompt)
    if hidden is not None:
        # Zero-width, BOM, variation selectors, tag characters, fillers: text the judge reads
        # and no one sees.
        raise InvalidConfig(
            f"the prompt contains an invisible character (U+{ord(hidden):04X} "
            f"{unicodedata.name(hidden, 'format character')}); send plain text"
        )
    return prompt
