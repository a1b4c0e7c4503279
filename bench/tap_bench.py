"""`python -m bench.tap_bench`: how fast a button tap is answered, and shown on the status card.

Four traders each run an analysis (demo data, 60 markets, one market per step) and tap Pause and
Resume on its card in turn, 200 taps in all, with a short think time between taps, over loopback
against the local Bot API emulator. Everything is real: the bot is `python -m bot` in its own
process (polling, AIORateLimiter, the notifier), with its own redis-server and Celery worker.

All times come from the emulator's clock:
  tap     the getUpdates response carrying the callback query was sent (the update delivered);
  answer  the bot's answerCallbackQuery for it was applied;
  edit    the first editMessageText of that card showing the new state (Paused, or Running
          after Resume) was applied.
A card whose analysis completes is replaced by a new one; taps on it are not counted.
"""

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.limits import PerUser

TAPS = 200
TRADERS = 4
THINK_S = (0.15, 0.35)
TARGETS_MS = {"answer": 150, "edit": 300}
RESULTS = Path(__file__).parent / "results" / "taps.md"
# A trader starts a new analysis when its card completes; a card lasts many taps, so this bound is
# never reached in a sound run (a trader past it stops with an error rather than hit the quota).
CARDS_PER_TRADER = TAPS // TRADERS + 1
BENCH_ENV = {
    "SCORE_BATCH_SIZE": "1",
    "MARKET_DATA": "demo",
    "TELEGRAM_BOT_TOKEN": "",
    "MAX_STARTS_PER_HOUR": str(CARDS_PER_TRADER),
}
PER_USER = PerUser(starts_per_hour=CARDS_PER_TRADER, active=1)  # bench/limits.py
CARD_TITLE = "Ranking "
FINAL = ("Completed", "Failed", "Cancelled")


@dataclass(frozen=True)
class Tap:
    action: str
    answer_ms: float
    edit_ms: float


def status_of(text: str | None) -> str | None:
    first = (text or "").split("\n", 1)[0]
    return first.rsplit(" · ", 1)[-1] if first.startswith(CARD_TITLE) and " · " in first else None


def step_of(text: str | None) -> int:
    for line in (text or "").splitlines():
        if "· step " in line:
            return int(line.rsplit("· step ", 1)[1])
    return -1


class Trader:
    def __init__(self, api, user_id: int, taps: int, rng: random.Random):
        self.api, self.user_id, self.taps, self.rng = api, user_id, taps, rng
        self.samples: list[Tap] = []
        self.cards = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            card = self.new_card()
            while len(self.samples) < self.taps:
                labels = self.api.message(self.user_id, card).button_labels
                action = "Pause" if "Pause" in labels else "Resume" if "Resume" in labels else None
                sample = self.tap(card, action) if action else None
                if sample is None:  # the analysis completed: carry on with a new one
                    card = self.new_card()
                    continue
                self.samples.append(sample)
                time.sleep(self.rng.uniform(*THINK_S))
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def new_card(self) -> int:
        api, before = self.api, self.cards
        if before >= CARDS_PER_TRADER:
            raise RuntimeError(
                f"trader {self.user_id} needs card {before + 1}, past the "
                f"{CARDS_PER_TRADER} its quota (MAX_STARTS_PER_HOUR) allows"
            )
        api.send_message(self.user_id, "/rank markets=60 top=5")
        card = api.wait_for(lambda: self._card(before), timeout=30)
        self.cards += 1
        # Start tapping once it runs past INIT, so Resume always means Running.
        api.wait_for(lambda: step_of(api.message(self.user_id, card).text) >= 1, timeout=30)
        return card

    def _card(self, index: int) -> int | None:
        cards = [m for m in self.api.messages(self.user_id, from_bot=True) if status_of(m.text)]
        return cards[index].message_id if len(cards) > index else None

    def tap(self, card: int, action: str) -> Tap | None:
        api = self.api
        wanted = "Paused" if action == "Pause" else "Running"
        mark = api.mark()
        query = api.press(self.user_id, card, action)

        def shown():
            for call in api.calls_of("editMessageText", since=mark):
                params = call.params
                if (
                    call.ok
                    and params.get("chat_id") == self.user_id
                    and params.get("message_id") == card
                    and status_of(call.result["text"]) in (wanted, *FINAL)
                ):
                    return call
            return None

        edit = api.wait_for(shown, timeout=10)
        if status_of(edit.result["text"]) in FINAL:  # it completed before the tap took effect
            return None
        answered = api.wait_for_callback_answer(query, timeout=10).answered
        delivered = delivery_time(api, api.callback_queries[query].update_id)
        return Tap(action, 1000 * (answered - delivered), 1000 * (edit.answered - delivered))


def delivery_time(api, update_id: int) -> float:
    """When the getUpdates response carrying the update was sent."""
    for call in reversed(api.calls_of("getUpdates")):
        if call.answered and call.result and any(u["update_id"] == update_id for u in call.result):
            return call.answered
    raise LookupError(f"update {update_id} was never delivered")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def report(taps: list[Tap], elapsed_s: float) -> tuple[str, bool]:
    rows, met = [], True
    for key, label in (("answer", "callback answer"), ("edit", "card edit showing the new state")):
        values = [getattr(t, f"{key}_ms") for t in taps]
        p50, p95, worst = percentile(values, 50), percentile(values, 95), max(values)
        ok = p95 <= TARGETS_MS[key]
        met &= ok
        rows.append(
            f"| {label} | {p50:.1f} ms | {p95:.1f} ms | {worst:.1f} ms | ≤ {TARGETS_MS[key]} ms | "
            f"{'met' if ok else 'MISSED'} |"
        )
    by_action = {a: sum(t.action == a for t in taps) for a in ("Pause", "Resume")}
    header = (
        f"Tap latency: {len(taps)} taps ({by_action['Pause']} Pause, {by_action['Resume']} Resume) "
        f"by {TRADERS} traders in {elapsed_s:.1f} s; bot as a subprocess (polling, AIORateLimiter), "
        f"local Bot API emulator on loopback, redis-server and a Celery worker (concurrency 2) "
        f"on the same {os.cpu_count()}-CPU host. Times from the emulator's clock, from the "
        f"update's delivery.\n\n"
    )
    table = "| from the tap to | p50 | p95 | max | target (p95) | |\n|---|---|---|---|---|---|\n" + "\n".join(
        rows
    )
    return header + table, met


def main() -> int:
    from sandbox import BotApiServer
    from tests.servers import ROOT, RedisServer, Worker

    server = RedisServer().start()
    os.environ.update(REDIS_URL=server.url, **BENCH_ENV)
    log_dir = Path(tempfile.mkdtemp(prefix="marketrank-tapbench-"))
    worker = Worker(dict(os.environ), "tapbench", concurrency=2, log_dir=str(log_dir)).start()
    api = BotApiServer(token="777000:BENCH").start()
    users = [900_000 + i for i in range(TRADERS)]
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_BASE_URL": api.base_url,
        "ALLOWED_USER_IDS": ",".join(map(str, users)),
        "ADMIN_USER_IDS": "",
        "LOG_LEVEL": "WARNING",
    }
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=env,
        stdout=open(log_dir / "bot.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        api.wait_for(lambda: api.calls_of("getUpdates"), timeout=60)
        rng = random.Random(7)
        traders = [Trader(api, user, TAPS // TRADERS, random.Random(rng.random())) for user in users]
        threads = [threading.Thread(target=t.run, name=f"trader-{t.user_id}") for t in traders]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        for trader in traders:
            if trader.error is not None:
                raise RuntimeError(f"trader {trader.user_id} failed; bot log in {log_dir}") from trader.error
    finally:
        bot.terminate()
        bot.wait(30)
        api.stop()
        worker.stop()
        server.cleanup()
    text, met = report([tap for trader in traders for tap in trader.samples], elapsed)
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
