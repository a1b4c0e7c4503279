"""A trader's own settings (#24) without the bot: times in a zone, cron lines in a zone across a
daylight-saving change (fixed clocks), quiet hours and held messages over the real Redis, the
refusals of bad zones and windows, and who may change whose settings."""

import json
import uuid
from datetime import datetime, timezone

import pytest

from analysis.errors import InvalidConfig, NotAllowed
from analysis.local_time import local_instant_due, next_local_run, shown_time, utc_candidates
from analysis.models import Gist, RankingConfig
from analysis.schedules.model import cron_fields
from analysis.schedules.service import ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import Actor, AnalysisService
from analysis.settings import Settings
from analysis.user_settings import HOLD, OFF, SEND, SILENT, UserSettingsService, UserSettingsStore
from bot import settings_callbacks, settings_views, views
from bot.settings_parsing import parse_settings_args, take_zone_option
from tasks.schedule_beat import celery_schedule, default_registrar
from tests.helpers import redis_snapshot


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# --- one card, two viewers in two zones -------------------------------------------------------
def a_completed_card() -> Gist:
    config = RankingConfig(
        markets=["BTC/USDT", "ETH/USDT", "SOL/USDT"],
        timeframe="1h",
        top_k=2,
        target_confidence=0.8,
        data_source="ccxt:binance",
        candles_to=int(utc("2027-01-15T13:00:00")),
    )
    return Gist.from_hash(
        {
            "id": "k3f9a2xq7m",
            "owner": "42",
            "status": "COMPLETED",
            "seq": "3",
            "progress": "1",
            "confidence": "0.9",
            "target": "0.8",
            "config": config.model_dump_json(),
            "state": "{}",
            "result": json.dumps(
                [
                    {"rank": 1, "symbol": "BTC/USDT", "score": 0.5},
                    {"rank": 2, "symbol": "ETH/USDT", "score": 0.1},
                ]
            ),
            "version": "3",
            "refine_gen": "0",
            "demo": "0",
            "created_at": str(utc("2027-01-15T13:01:00")),
            "updated_at": str(utc("2027-01-15T13:02:00")),
        }
    )


def test_the_same_card_in_berlin_and_in_new_york():
    card = a_completed_card()
    berlin = views.card_text(card, zone="Europe/Berlin")
    new_york = views.card_text(card, zone="America/New_York")
    # The candles closed at 13:00 UTC: 14:00 in Berlin, 08:00 in New York, each with its offset.
    assert "1h candles to 2027-01-15 14:00 UTC+01:00" in berlin
    assert "1h candles to 2027-01-15 08:00 UTC-05:00" in new_york
    assert "Updated 01-15 14:02 UTC+01:00" in berlin and "Updated 01-15 08:02 UTC-05:00" in new_york
    # Without a zone the card reads as before: UTC, and says so.
    assert "candles to 2027-01-15 13:00 UTC" in views.card_text(card)
    # Everything else on the card is the same for both.
    strip = [line for line in berlin.splitlines() if "UTC" not in line]
    assert strip == [line for line in new_york.splitlines() if "UTC" not in line]


def test_summer_time_shows_its_own_offset():
    assert shown_time(utc("2027-07-01T12:00:00"), "Europe/Berlin") == "07-01 14:00 UTC+02:00"
    assert shown_time(utc("2027-07-01T12:00:00"), "Asia/Kolkata") == "07-01 17:30 UTC+05:30"
    assert shown_time(utc("2027-07-01T12:00:00")) == "07-01 12:00 UTC"


# --- a cron line in local time across daylight saving ------------------------------------------
NINE_DAILY = cron_fields("0 9 * * *")


def test_nine_in_berlin_is_eight_utc_in_winter_and_seven_utc_after_the_spring_change():
    # Europe/Berlin goes from UTC+1 to UTC+2 on Sunday 2027-03-28 at 01:00 UTC.
    saturday = next_local_run(NINE_DAILY, "Europe/Berlin", utc("2027-03-26T12:00:00"))
    sunday = next_local_run(NINE_DAILY, "Europe/Berlin", utc("2027-03-27T12:00:00"))
    assert saturday == utc("2027-03-27T08:00:00") and sunday == utc("2027-03-28T07:00:00")
    # ... and back on Sunday 2027-10-31.
    assert next_local_run(NINE_DAILY, "Europe/Berlin", utc("2027-10-30T12:00:00")) == utc(
        "2027-10-31T08:00:00"
    )


def test_beat_fires_at_both_candidate_minutes_and_only_the_local_one_runs():
    minutes, hours = utc_candidates({0}, {9}, "Europe/Berlin", utc("2027-03-01T00:00:00"))
    assert (minutes, hours) == ({0}, {7, 8})
    # The firing at 07:00 UTC on the Sunday after the change is 09:00 in Berlin: due; 08:00 is not.
    assert local_instant_due(NINE_DAILY, "Europe/Berlin", utc("2027-03-28T07:00:04")) == utc(
        "2027-03-28T07:00:00"
    )
    assert local_instant_due(NINE_DAILY, "Europe/Berlin", utc("2027-03-28T08:00:04")) is None
    # The day before it is the other way round.
    assert local_instant_due(NINE_DAILY, "Europe/Berlin", utc("2027-03-27T07:00:04")) is None
    assert local_instant_due(NINE_DAILY, "Europe/Berlin", utc("2027-03-27T08:00:04")) == utc(
        "2027-03-27T08:00:00"
    )


class FixedClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_local_cron_schedule_fires_at_the_right_utc_instant_across_the_change(runtime, queue, factory):
    """Through the schedule service and its real redbeat entry: of beat's two firings a day,
    the one at nine in Berlin starts a run, before and after the change."""
    clock = FixedClock(utc("2027-03-26T12:00:00"))
    settings = Settings(
        schedule_min_interval_s=1, allowed_user_ids=[], admin_user_ids=[], max_active_per_user=5
    )
    service = ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        AnalysisService(runtime.store, queue),
        factory,
        default_registrar(),
        settings,
        clock=clock,
    )
    owner = Actor(str(uuid.uuid4().int % 10**9))
    schedule = service.add(
        'cron="0 9 * * *"', {"symbols": ["BTC/USDT", "ETH/USDT"], "top_k": 1}, owner, zone="Europe/Berlin"
    )
    assert schedule.every.zone == "Europe/Berlin"
    entry = celery_schedule(schedule.every, service.beat.app)  # type: ignore[attr-defined]
    assert entry.hour == {7, 8} and entry.minute == {0}
    outcomes = {}
    for at in ("2027-03-27T07:00:02", "2027-03-27T08:00:02", "2027-03-28T07:00:02", "2027-03-28T08:00:02"):
        clock.now = utc(at)
        outcomes[at] = service.fire(schedule.id, fire_id=f"beat-{at}").code
        queue.drain(runtime)
    assert outcomes == {
        "2027-03-27T07:00:02": "not-due",
        "2027-03-27T08:00:02": "started",
        "2027-03-28T07:00:02": "started",
        "2027-03-28T08:00:02": "not-due",
    }
    # /schedules shows the next run in the zone's own clock: 09:00 with the summer offset.
    clock.now = utc("2027-03-28T08:00:02")
    nxt = service.next_runs([service.store.get(schedule.id)])[schedule.id]
    assert shown_time(nxt, "Europe/Berlin") == "03-29 09:00 UTC+02:00"
    service.remove(schedule.id, owner)


def test_tz_applies_to_cron_lines_only_and_unknown_zones_are_refused(runtime, queue, factory):
    settings = Settings(schedule_min_interval_s=1, allowed_user_ids=[], admin_user_ids=[])
    service = ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys),
        AnalysisService(runtime.store, queue),
        factory,
        default_registrar(),
        settings,
    )
    before = redis_snapshot(runtime.redis)
    with pytest.raises(InvalidConfig, match="tz= applies to cron lines"):
        service.add("4h", {"top_k": 2}, Actor("7"), zone="Europe/Berlin")
    with pytest.raises(InvalidConfig, match="unknown time zone 'Mars/Olympus'"):
        service.add('cron="0 9 * * *"', {"top_k": 2}, Actor("7"), zone="Mars/Olympus")
    assert redis_snapshot(runtime.redis) == before


# --- settings: parsing, refusals, who may change them -----------------------------------------
@pytest.fixture
def user_settings(runtime):
    return UserSettingsService(
        UserSettingsStore(runtime.redis, runtime.keys, max_held=50, held_ttl_s=3600),
        clock=FixedClock(utc("2027-01-15T12:00:00")),
    )


def a_user() -> str:
    return str(uuid.uuid4().int % 10**9 + 1)


def test_a_user_changes_their_own_settings(user_settings):
    user = a_user()
    changed = user_settings.change(
        user,
        Actor(user),
        **parse_settings_args("tz=Europe/Berlin quiet=23:00-07:00 finished=silent schedule_changes=off"),
    )
    again = user_settings.get(user, Actor(user))
    assert again == changed
    assert (
        again.zone,
        again.quiet_text(),
        again.mode("finished"),
        again.mode("schedule_changes"),
        again.mode("schedule_run"),
    ) == ("Europe/Berlin", "23:00–07:00", "silent", "off", "on")


@pytest.mark.parametrize(
    "words, message",
    [
        ("tz=Europe/Berlinn", "unknown time zone 'Europe/Berlinn': give an IANA name such as Europe/Berlin"),
        ("tz=", "unknown time zone ''"),
        (
            "quiet=23-07",
            "'23-07' is not a window: give quiet hours as HH:MM-HH:MM in your zone, e.g. 23:00-07:00, or off",
        ),
        ("quiet=25:00-07:00", "is not a window"),
        ("quiet=07:00-07:00", "start and end at the same time"),
        ("finished=loud", "finished can be on, silent or off, not 'loud'"),
    ],
)
@pytest.mark.slow
def test_unknown_zones_and_malformed_windows_are_refused_with_what_is_accepted(
    user_settings, runtime, words, message
):
    user = a_user()
    user_settings.change(user, Actor(user), zone="Asia/Tokyo")
    before = redis_snapshot(runtime.redis)
    with pytest.raises(InvalidConfig, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        user_settings.change(user, Actor(user), **parse_settings_args(words))
    assert "\n" not in str(err.value)
    assert redis_snapshot(runtime.redis) == before


def test_nobody_changes_anyone_elses_settings_not_even_an_admin(user_settings, runtime):
    user, other = a_user(), a_user()
    before = redis_snapshot(runtime.redis)
    for actor in (Actor(other), Actor(other, is_admin=True)):
        with pytest.raises(NotAllowed, match="only you can change your settings"):
            user_settings.change(user, actor, zone="Europe/Berlin")
    with pytest.raises(NotAllowed):
        user_settings.get(user, Actor(other))
    with pytest.raises(NotAllowed, match="admin alerts are for admins"):
        user_settings.change(user, Actor(user), modes={"admin_alerts": "off"})
    assert redis_snapshot(runtime.redis) == before
    assert user_settings.get(user, Actor(other, is_admin=True)).zone == "UTC"  # an admin may read


def test_settings_and_schedule_arguments():
    assert parse_settings_args("") == {}
    assert take_zone_option('cron="0 9 * * *" tz=local top=5') == ("'cron=0 9 * * *' top=5", "local")
    assert take_zone_option("4h top=5") == ("4h top=5", "")


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "u1",
        "u1:m:42:finished",
        "u1:m:42:finished:loud",
        "u1:m:42:unknown:on",
        "u2:m:42:finished:on",
        "u1:m:042:finished:on",
        "u1:m:-42:finished:on",
        "u1:q:42:on",
        "u1:z:42:Europe/Berlin",
        "u1:m:42:finished:on:x",
        "u1:m:" + "9" * 17 + ":finished:on",
    ],
)
def test_forged_or_malformed_settings_data_is_refused(data):
    assert settings_callbacks.parse(data) is None


def test_settings_buttons_round_trip_and_fit():
    for action, kind, mode in (
        (settings_callbacks.MODE, "schedule_changes", "silent"),
        (settings_callbacks.QUIET_OFF, "", ""),
        (settings_callbacks.ZONE_UTC, "", ""),
    ):
        data = settings_callbacks.encode(action, "1234567890", kind, mode)
        assert len(data.encode()) <= 64
        assert settings_callbacks.parse(data) == settings_callbacks.SettingsPress(
            action, "1234567890", kind, mode
        )


# --- quiet hours and held messages --------------------------------------------------------------
def test_how_a_message_goes_out(user_settings):
    user = a_user()
    user_settings.change(
        user,
        Actor(user),
        zone="Europe/Berlin",
        quiet="23:00-07:00",
        modes={"finished": "silent", "schedule_run": "off"},
    )
    clock = user_settings.clock
    clock.now = utc("2027-01-15T12:00:00")  # 13:00 in Berlin
    assert [user_settings.decide(user, k) for k in ("finished", "schedule_run", "schedule_changes")] == [
        SILENT,
        OFF,
        SEND,
    ]
    clock.now = utc("2027-01-15T22:30:00")  # 23:30 in Berlin: quiet
    assert [user_settings.decide(user, k) for k in ("finished", "schedule_run", "schedule_changes")] == [
        HOLD,
        OFF,
        HOLD,
    ]
    clock.now = utc("2027-01-16T06:00:00")  # 07:00 in Berlin: over
    assert user_settings.decide(user, "schedule_changes") == SEND


def test_held_messages_come_back_once_in_order_when_the_window_ends(user_settings, runtime):
    user = a_user()
    user_settings.change(user, Actor(user), zone="Europe/Berlin", quiet="23:00-07:00")
    clock = user_settings.clock
    for n, at in enumerate(("2027-01-15T22:10:00", "2027-01-15T23:40:00", "2027-01-16T04:05:00"), 1):
        clock.now = utc(at)
        user_settings.hold(user, "finished", int(user), f"run {n} finished")
        assert [u for u, _ in ((s.user, h) for s, h in user_settings.due_digests())] == []  # still quiet
    assert runtime.redis.ttl(runtime.keys.held(user)) > 0
    clock.now = utc("2027-01-16T06:01:00")  # 07:01 in Berlin
    due = [(s.user, h) for s, h in user_settings.due_digests() if s.user == user]
    assert [m.text for m in due[0][1]] == ["run 1 finished", "run 2 finished", "run 3 finished"]
    assert [s.user for s, _ in user_settings.due_digests()].count(user) == 0  # taken once
    digest = settings_views.digest_text(user_settings.store.get(user), due[0][1], clock.now)
    assert digest.startswith("🌙 3 messages held during your quiet hours (23:00–07:00 UTC+01:00)")
    assert digest.index("run 1") < digest.index("run 2") < digest.index("run 3")
    assert "<b>23:10 UTC+01:00</b> · Run finished" in digest


def test_held_messages_are_bounded(runtime):
    store = UserSettingsStore(runtime.redis, runtime.keys, max_held=3, held_ttl_s=60)
    service = UserSettingsService(store, clock=FixedClock(utc("2027-01-15T12:00:00")))
    user = a_user()
    for n in range(5):
        service.hold(user, "finished", 1, f"m{n}")
    assert [m.text for m in store.take(user)] == ["m2", "m3", "m4"]  # the newest kept


def test_an_admin_reads_a_users_settings_from_the_cli(user_settings, capsys):
    from cli.main import main

    user = a_user()
    user_settings.change(
        user, Actor(user), zone="Europe/Berlin", quiet="23:00-07:00", modes={"finished": "silent"}
    )
    user_settings.hold(user, "finished", int(user), "held one")
    assert main(["settings", user, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {
        "user": user,
        "zone": "Europe/Berlin",
        "quiet_hours": "23:00–07:00",
        "modes": {"finished": "silent", "schedule_run": "on", "schedule_changes": "on", "admin_alerts": "on"},
        "held": 1,
    }
    assert main(["settings", user]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"user {user}: time zone Europe/Berlin, quiet hours 23:00–07:00 UTC+0")
    assert "1 held for the digest" in text and "  Run finished: silent" in text
