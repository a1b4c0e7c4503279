"""The sandbox's chat page in a real headless browser (Debian's chromium through chromium-driver and
selenium) against the sandbox's Bot API server, the real bot (`python -m bot`, killed and started
again mid-run), the session's real Celery worker and Redis. Everything is done as a user would:
typing, the command menu, clicking buttons (one by keyboard), switching people and chats; the
assertions are about what the page shows."""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from analysis.models import Status
from analysis.service import Actor
from launcher.run import sandbox_env
from sandbox import BotApiServer
from sandbox.access import new_page_secret
from sandbox.cast import SANDBOX_CAST
from sandbox.launch import chat_page_url, open_sandbox
from tests.servers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker")]

STATUS_LINE = re.compile(r"^Ranking (\w+) · (\w+)$", re.M)
STEP = re.compile(r"· step (\d+)$", re.M)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1400",
]
ALICE, BOB, CAROL = (p.user_id for p in SANDBOX_CAST.people)
PAGE_SECRET = new_page_secret()

# What the page shows, read in one go (elements are replaced when a card is edited).
READ_CHAT = """
return [...document.querySelectorAll('#messages li')].map(li => ({
  id: Number(li.dataset.messageId), bot: li.classList.contains('bot'),
  text: (li.querySelector('.body') || {textContent: ''}).textContent,
  buttons: [...li.querySelectorAll('.keyboard button')].map(b => b.textContent),
  image: li.querySelector('img') ? li.querySelector('img').naturalWidth : null,
  edited: (li.querySelector('.edited') || {textContent: ''}).textContent}));
"""


@pytest.fixture
def sandbox():
    # A bot id of its own: the bot's event consumer group is per bot.
    server = open_sandbox(0, token=f"{random.randrange(10**6, 10**9)}:SANDBOX", secret=PAGE_SECRET)
    yield server
    server.stop()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("chromium and chromium-driver are not installed: run `make test`, which installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="marketrank-chromium-")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for drivers online
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class Bot:
    """`python -m bot` against the sandbox, as `make run` starts it."""

    def __init__(self, sandbox: BotApiServer, log_path: Path, llm_base_url: str):
        self.sandbox, self.log_path, self.process = sandbox, log_path, None
        # The session's local judge, one call a step: the analysis runs for many steps of a
        # second or more (the test delays every answer), long enough to pause, resume and kill
        # the bot mid-run on a fast idle machine as on a loaded one.
        self.env = {
            **os.environ,
            **sandbox_env(sandbox),
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": llm_base_url,
            "LLM_BATCH_SIZE": "1",
            "CARD_EDIT_INTERVAL_S": "0.5",
            "PTB_TIMEDELTA": "1",
        }

    def start(self) -> None:
        mark = self.sandbox.mark()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
        )
        self.sandbox.wait_for(lambda: self.sandbox.calls_of("getUpdates", since=mark), timeout=30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


class Page:
    """The chat page, driven like a user would."""

    def __init__(self, driver, url: str):
        self.driver = driver
        driver.get(url)
        self.wait_for(lambda: driver.find_elements("css selector", "#people label"), "the people")

    def wait_for(self, predicate, what: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except Exception as exc:  # an element replaced by an edit between find and read
                if type(exc).__name__ != "StaleElementReferenceException":
                    raise
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; the page shows "
            f"{[m['text'][:80] for m in self.chat()]}"
        )

    def chat(self) -> list[dict]:
        return self.driver.execute_script(READ_CHAT)

    def be(self, role: str, chat: str) -> None:
        self.driver.find_element("css selector", f'#people label[data-role="{role}"] input').click()
        self.driver.find_element("css selector", f'#chats label[data-chat="{chat}"] input').click()

    def type(self, text: str) -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.driver.find_element("id", "text")
        box.clear()
        box.send_keys(text + Keys.ENTER)

    def cards(self) -> list[dict]:
        return [m for m in self.chat() if m["bot"] and STATUS_LINE.search(m["text"])]

    def card(self, message_id: int) -> dict:
        return next(m for m in self.chat() if m["id"] == message_id)

    def card_when(self, message_id: int, status: str, timeout: float = 60) -> dict:
        return self.wait_for(
            lambda: (c := self.card(message_id)) and status_of(c) == status and c,
            f"the card to show {status}",
            timeout,
        )

    def press(self, message_id: int, label: str, by_keyboard: bool = False) -> str:
        """Press a button of a message; the toast it brings (the bot's answer)."""
        from selenium.webdriver.common.keys import Keys

        self.driver.execute_script(
            "const t = document.getElementById('toast'); t.hidden = true; t.textContent = '';"
        )
        selector = f'li[data-message-id="{message_id}"] .keyboard button[data-label="{label}"]'
        button = self.wait_for(
            lambda: self.driver.find_elements("css selector", selector), f"button {label}"
        )[0]
        if by_keyboard:
            self.driver.execute_script("arguments[0].focus();", button)
            button.send_keys(Keys.ENTER)
        else:
            button.click()
        toast = self.driver.find_element("id", "toast")
        return self.wait_for(lambda: toast.is_displayed() and toast.text, f"the toast after {label}", 15)


def status_of(message: dict) -> str | None:
    match = STATUS_LINE.search(message["text"])
    return match.group(2) if match else None


def step_of(message: dict) -> int:
    match = STEP.search(message["text"])
    return int(match.group(1)) if match else -1


def test_a_trader_ranks_pauses_resumes_and_refines_in_the_browser(
    sandbox, browser, service, tmp_path, llm_server, request
):
    llm_server.delay_next(10**6, 1.0)
    request.addfinalizer(llm_server.clear_faults)
    bot = Bot(sandbox, tmp_path / "bot.log", llm_server.base_url)
    bot.start()
    try:
        page = Page(browser, chat_page_url(sandbox, PAGE_SECRET))
        header = browser.find_element("css selector", "header").text
        assert "local sandbox" in header and "not Telegram" in header
        people = browser.find_element("id", "people").text
        assert all(f"id {user_id}" in people for user_id in (ALICE, BOB, CAROL))

        # The admin's private chat: the command menu has the admin commands (setMyCommands).
        page.be("admin", "private")
        browser.find_element("id", "menu-button").click()
        menu = page.wait_for(lambda: browser.find_element("id", "command-menu").text, "the command menu")
        assert "/rank" in menu and "/force_resume" in menu
        browser.find_element("css selector", "#command-menu button").click()  # fills in /rank
        assert browser.find_element("id", "text").get_attribute("value") == "/rank "

        # The trader starts a ranking in the group, where the second trader sees the card too.
        page.be("trader", "group")
        page.type("/rank markets=20 top=3 strategy=llm")
        card = page.wait_for(lambda: page.cards(), "the status card")[0]
        assert "20 markets · 1h · llm · top 3" in card["text"] and "DEMO DATA" in card["text"]
        card_id = card["id"]
        first_step = page.wait_for(
            lambda: step_of(page.card(card_id)) >= 1 and step_of(page.card(card_id)), "a committed step"
        )
        page.wait_for(lambda: step_of(page.card(card_id)) > first_step, "the progress to advance")

        # Pause, by keyboard: the toast, then the card in place says Paused with Resume.
        assert page.press(card_id, "Pause", by_keyboard=True).startswith("Paused")
        paused = page.card_when(card_id, "Paused")
        assert paused["buttons"] == ["Resume", "Cancel", "Refresh"]

        # The second trader's Resume on the trader's card is refused and changes nothing.
        page.be("second", "group")
        refusal = page.press(card_id, "Resume")
        assert "belongs to someone else" in refusal
        # Refused before it was answered: the analysis is paused still, and its card says so.
        (gist,) = service.list(Actor(str(ALICE)))
        assert gist.status == Status.PAUSED
        assert status_of(page.card(card_id)) == "Paused"

        # The owner's Resume goes through.
        page.be("trader", "group")
        assert page.press(card_id, "Resume") == "Resumed."
        page.card_when(card_id, "Running")

        # The bot dies mid-run; a command typed meanwhile is answered once it is back, and the
        # card carries on to the end: nothing is lost.
        bot.kill()
        (gist,) = service.list(Actor(str(ALICE)))
        assert gist.status == Status.RUNNING, "the bot was to die mid-run"
        llm_server.clear_faults()  # the slow judge kept it mid-run for the steps above; no more
        page.type("/list")
        page.wait_for(
            lambda: [m for m in page.chat() if not m["bot"] and m["text"] == "/list"],
            "the page to show /list sent",
        )
        bot.start()
        listing = page.wait_for(
            lambda: [m for m in page.chat() if m["bot"] and "Your analyses" in m["text"]],
            "the answer to /list typed while the bot was down",
        )
        assert len(listing) == 1
        done = page.card_when(card_id, "Completed", timeout=90)
        ranking = re.findall(r"^\s*(\d)\. (\w+/USDT)", done["text"], re.M)
        assert [rank for rank, _ in ranking] == ["1", "2", "3"], done["text"]
        assert done["buttons"] == ["Refine", "Chart", "Why", "Refresh"]
        assert "edited" in done["edited"]
        assert len(page.cards()) == 1  # one card, edited in place
        assert step_of(done) == service.get(gist.id, Actor(str(ALICE))).seq > gist.seq

        # Chart: an image the browser could decode.
        assert page.press(card_id, "Chart")
        width = page.wait_for(lambda: max((m["image"] or 0) for m in page.chat()), "the chart image")
        assert width > 300

        # Refine: the target goes up by 0.05 and the card comes back to Completed.
        assert page.press(card_id, "Refine")
        page.wait_for(lambda: "0.85" in page.card(card_id)["text"], "the raised target")
        final = page.card_when(card_id, "Completed", timeout=90)
        assert [r for r, _ in re.findall(r"^\s*(\d)\. (\w+/USDT)", final["text"], re.M)] == ["1", "2", "3"]

        browser.execute_script(
            f"document.querySelector('li[data-message-id=\"{card_id}\"]').scrollIntoView({{block: 'start'}});"
        )
        shot = os.environ.get("SANDBOX_SCREENSHOT") or str(tmp_path / "sandbox.png")
        browser.save_screenshot(shot)
    finally:
        bot.stop()
    log = (tmp_path / "bot.log").read_text()
    assert "Traceback" not in log and sandbox.token not in log, log[-3000:]
