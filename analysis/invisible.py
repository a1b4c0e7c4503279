"""Which characters of a trader's text nobody can see, and which of those are still part of what
is written (an emoji sequence, a word of a script that spells with joiners).

Python's `unicodedata` has no Default_Ignorable_Code_Point property, so its ranges are copied
below from Unicode 16.0.0's DerivedCoreProperties.txt (the same set as 15.1.0).
"""

import unicodedata

# Default_Ignorable_Code_Point, DerivedCoreProperties.txt, Unicode 16.0.0 (first, last).
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Blank, yet neither default-ignorable nor a format character: renders as empty space.
BLANK_LOOKALIKES = frozenset("\u2800")
ZERO_WIDTH_JOINER = "\u200d"
ZERO_WIDTH_NON_JOINER = "\u200c"
EMOJI_PRESENTATION = "\ufe0f"  # VS16
COMBINING_KEYCAP = "\u20e3"
PUNCTUATION_EMOJI = frozenset("\u203c\u2049\u3030\u303d")  # ‼ ⁉ 〰 〽
# Scripts whose spelling needs a zero-width (non-)joiner inside words (Persian "می‌خواهم",
# Hindi half forms after a virama): code-point blocks -> script.
JOINING_SCRIPTS = (
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFC, "arabic"),
    (0x0700, 0x074F, "syriac"),
    (0x0900, 0x097F, "devanagari"),
    (0x0980, 0x09FF, "bengali"),
    (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"),
    (0x0B00, 0x0B7F, "oriya"),
    (0x0B80, 0x0BFF, "tamil"),
    (0x0C00, 0x0C7F, "telugu"),
    (0x0C80, 0x0CFF, "kannada"),
    (0x0D00, 0x0D7F, "malayalam"),
    (0x0D80, 0x0DFF, "sinhala"),
)


def is_default_ignorable(ch: str) -> bool:
    code = ord(ch)
    return any(first <= code <= last for first, last in DEFAULT_IGNORABLE)


def invisible_character(text: str) -> str | None:
    """The first character of `text` a reader cannot see, or None: Unicode's default-ignorable
    code points (zero-width spaces and joiners, BOM, soft hyphen, variation selectors, tag
    characters, Hangul fillers...), any other format character, and the braille blank. Allowed,
    because they are part of what is written: a zero-width joiner between two emoji (👨‍💻), VS16
    right after an emoji or a keycap's digit (❤️, 1️⃣), and one zero-width (non-)joiner inside a
    word of a script that needs it."""
    for i, ch in enumerate(text):
        if not (is_default_ignorable(ch) or ch in BLANK_LOOKALIKES or unicodedata.category(ch) == "Cf"):
            continue
        before = text[i - 1] if i > 0 else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if (
            ch == EMOJI_PRESENTATION
            and before
            and (_is_emoji(before) or (before in "0123456789#*" and after == COMBINING_KEYCAP))
        ):
            continue
        if (
            ch == ZERO_WIDTH_JOINER
            and before
            and after
            and _is_emoji_part(before)
            and unicodedata.category(after) == "So"
        ):
            continue
        if (
            ch in (ZERO_WIDTH_JOINER, ZERO_WIDTH_NON_JOINER)
            and before
            and after
            and _joins_a_word(before, after)
        ):
            continue
        return ch
    return None


def _joins_a_word(before: str, after: str) -> bool:
    """A letter (or a mark such as a virama) and a letter of one script that uses joiners."""
    script = _joining_script(before)
    return (
        script is not None
        and script == _joining_script(after)
        and unicodedata.category(before)[0] in "LM"
        and unicodedata.category(after)[0] == "L"
    )


def _joining_script(ch: str) -> str | None:
    code = ord(ch)
    return next((script for start, end, script in JOINING_SCRIPTS if start <= code <= end), None)


def _is_emoji(ch: str) -> bool:
    # Emoji are symbols (arrows such as ↗ are math symbols); the braille blank is one too, but
    # nothing anyone would dress as an emoji.
    return (
        unicodedata.category(ch) in ("So", "Sk", "Sm") or ch in PUNCTUATION_EMOJI
    ) and ch not in BLANK_LOOKALIKES


def _is_emoji_part(ch: str) -> bool:
    return _is_emoji(ch) or ch == EMOJI_PRESENTATION
