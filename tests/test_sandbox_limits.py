"""The sandbox refuses what Telegram refuses: text over 4,096 characters, callback data over 64
bytes, and a chat written to faster than about once a second (429 with retry_after), and a bot
that honours retry_after gets through."""

import asyncio
import datetime as dtm

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, RetryAfter

from sandbox import BotApiServer, FloodLimit
from sandbox.flood import FloodControl

TOKEN = "4242:SANDBOX"


def bot_for(api: BotApiServer) -> Bot:
    return Bot(TOKEN, base_url=api.base_url, base_file_url=api.base_file_url)


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def test_text_limit_is_4096_characters_counted_as_telegram_counts_them():
    async def scenario(api: BotApiServer) -> None:
        async with bot_for(api) as bot:
            await bot.send_message(7, "x" * 4096)
            with pytest.raises(BadRequest, match="too long"):
                await bot.send_message(7, "x" * 4097)
            # An emoji outside the BMP is two UTF-16 units, as on Telegram.
            with pytest.raises(BadRequest, match="too long"):
                await bot.send_message(7, "x" * 4095 + "\N{CHART WITH UPWARDS TREND}")
            card = await bot.send_message(7, "card")
            with pytest.raises(BadRequest, match="(?i)message_too_long"):
                await bot.edit_message_text("y" * 4097, chat_id=7, message_id=card.message_id)

    with BotApiServer(token=TOKEN) as api:
        asyncio.run(scenario(api))
        assert [m.text[:1] for m in api.messages(7)] == ["x", "c"]


def test_callback_data_over_64_bytes_is_refused_and_nothing_is_sent():
    async def scenario(api: BotApiServer) -> None:
        async with bot_for(api) as bot:
            fits = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="é" * 32)]])
            await bot.send_message(7, "fits", reply_markup=fits)
            too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="é" * 32 + "x")]])
            with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
                await bot.send_message(7, "too long", reply_markup=too_long)

    with BotApiServer(token=TOKEN) as api:
        asyncio.run(scenario(api))
        assert [m.text for m in api.messages(7)] == ["fits"]
        with pytest.raises(ValueError, match="64"):
            api.press_button(7, 1, "z" * 65)


def test_flood_control_is_a_bucket_per_chat_refilled_once_a_second():
    flood = FloodControl(FloodLimit(per_second=1.0, burst=3))
    assert [flood.take(1, now=100.0) for _ in range(3)] == [0, 0, 0]
    assert flood.take(1, now=100.0) == 1  # the fourth write in the same instant waits
    assert flood.take(2, now=100.0) == 0  # another chat is not affected
    assert flood.take(1, now=100.5) == 1  # half a token is not enough; nothing spent
    assert flood.take(1, now=101.0) == 0  # one second later one write goes through
    assert flood.take(1, now=101.0) == 1
    assert [flood.take(1, now=110.0) for _ in range(4)] == [0, 0, 0, 1]  # the burst is capped


def test_a_flooded_chat_gets_429_with_retry_after_and_a_patient_bot_gets_through(monkeypatch):
    monkeypatch.setenv("PTB_TIMEDELTA", "1")

    async def scenario(api: BotApiServer) -> float:
        async with bot_for(api) as bot:
            card = await bot.send_message(7, "edit 0")
            for n in range(1, 3):
                await bot.edit_message_text(f"edit {n}", chat_id=7, message_id=card.message_id)
            with pytest.raises(RetryAfter) as flooded:
                await bot.edit_message_text("edit 3", chat_id=7, message_id=card.message_id)
            await bot.send_message(8, "another chat is not flooded")
            wait = seconds(flooded.value.retry_after)
            await asyncio.sleep(wait)
            await bot.edit_message_text("edit 3", chat_id=7, message_id=card.message_id)
            return wait

    with BotApiServer(token=TOKEN, flood=FloodLimit(per_second=1.0, burst=3)) as api:
        wait = asyncio.run(scenario(api))
        assert wait == 1
        assert api.message(7, 1).text == "edit 3"
        refused = [c for c in api.calls_of("editMessageText") if c.status == 429]
        assert len(refused) == 1 and refused[0].response["parameters"] == {"retry_after": 1}
        assert refused[0].description == "Too Many Requests: retry after 1"
