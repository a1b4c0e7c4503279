"""Text as Telegram stores it: HTML parse mode into plain text plus entities, command entities,
UTF-16 lengths, the link schemes it accepts, and image sizes of uploaded photos."""

from __future__ import annotations

import html.parser
import re
import struct
from typing import Any

from sandbox.errors import bad_request

LINK_SCHEMES = frozenset({"http", "https", "tg"})
LINK_REFUSED = "only http, https and tg links are allowed"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_URL_EDGES = "".join(map(chr, range(0x21)))  # C0 controls and space, as browsers strip them

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


class _HtmlEntityParser(html.parser.HTMLParser):
    """Turns Telegram-flavoured HTML into plain text plus MessageEntity dicts."""

    _SIMPLE = {
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "u": "underline",
        "ins": "underline",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "tg-spoiler": "spoiler",
        "code": "code",
        "pre": "pre",
        "a": "text_link",
        "blockquote": "blockquote",
        "span": "spoiler",
        "tg-emoji": "custom_emoji",
    }

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self._source = source
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self._parts: list[str] = []
        self._offset = 0
        self._stack: list[tuple[str, dict[str, str | None], int]] = []
        self.entities: list[dict[str, Any]] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _byte_offset(self) -> int:
        line, column = self.getpos()
        return len(self._source[: self._line_starts[line - 1] + column].encode())

    def _fail(self, reason: str) -> None:
        raise bad_request(f"can't parse entities: {reason} at byte offset {self._byte_offset()}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag not in self._SIMPLE or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            self._fail(f'Unsupported start tag "{tag}"')
        self._stack.append((tag, attributes, self._offset))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail(f'Unsupported start tag "{tag}"')

    def handle_endtag(self, tag: str) -> None:
        if not self._stack or self._stack[-1][0] != tag:
            self._fail(f'Unmatched end tag "{tag}"')
        start_tag, attributes, start = self._stack.pop()
        length = self._offset - start
        if length == 0:
            return
        # <pre><code class="language-x"> is one pre entity with a language, not two.
        if tag == "code" and self._stack and self._stack[-1][0] == "pre":
            language = (attributes.get("class") or "").removeprefix("language-")
            if language:
                pre_tag, pre_attrs, pre_start = self._stack[-1]
                self._stack[-1] = (pre_tag, {**pre_attrs, "_language": language}, pre_start)
            return
        entity: dict[str, Any] = {"type": self._SIMPLE[start_tag], "offset": start, "length": length}
        if start_tag == "a":
            entity["url"] = attributes.get("href") or ""
        elif start_tag == "pre" and attributes.get("_language"):
            entity["language"] = attributes["_language"]
        elif start_tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        elif start_tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self._parts.append(data)
        self._offset += utf16_len(data)

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        self.close()
        if self._stack:
            raise bad_request(
                "can't parse entities: Can't find end tag corresponding to start tag "
                f'"{self._stack[-1][0]}"'
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return self.text, self.entities


def checked_link(url: object) -> str | None:
    """The link as a browser would read it, if its scheme is one Telegram accepts (none: http,
    as Telegram adds it); None for any other (javascript:, data:, file:...). A browser drops tabs
    and newlines anywhere and controls at the ends, so "java\tscript:" is javascript: too."""
    if not isinstance(url, str):
        return None
    cleaned = url.strip(_URL_EDGES).replace("\t", "").replace("\n", "").replace("\r", "")
    scheme = _SCHEME.match(cleaned)
    if scheme is None:
        return f"http://{cleaned}" if cleaned else None
    return cleaned if scheme.group(1).lower() in LINK_SCHEMES else None


def checked_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`entities` with each text_link's URL as checked_link reads it; a 400 for a refused one."""
    checked = []
    for entity in entities:
        if isinstance(entity, dict) and entity.get("type") == "text_link":
            link = checked_link(entity.get("url"))
            if link is None:
                raise bad_request(f"can't parse entities: wrong text_link URL: {LINK_REFUSED}")
            entity = {**entity, "url": link}
        checked.append(entity)
    return checked


def render_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities as Telegram would store them for this input.

    HTML is parsed; Markdown flavours are kept verbatim (not emulated). A text_link to a scheme
    Telegram does not accept is refused (400).
    """
    if parse_mode and parse_mode.lower() == "html":
        parser = _HtmlEntityParser(text)
        parser.feed(text)
        text, parsed = parser.finish()
        return text, checked_entities(parsed)
    return text, checked_entities(list(entities or []))


def command_entities(text: str) -> list[dict[str, Any]]:
    """A bot_command entity for a leading ``/command[@bot]``, as Telegram adds it."""
    match = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
    if not match:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG image, or None if ``data`` is neither."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(JPEG_SIGNATURE):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            (segment,) = struct.unpack(">H", data[i + 2 : i + 4])
            i += 2 + segment
        return 0, 0
    return None
