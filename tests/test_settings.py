"""Settings: every one documented in .env.example, lists parsed, secrets kept out of reprs."""

import os
import re
import subprocess
import sys

import pytest

from analysis.settings import Settings
from tests.servers import ROOT


def test_every_setting_is_documented_in_env_example():
    listed = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {name.upper() for name in Settings.model_fields} == listed


def test_user_id_lists_and_secrets(monkeypatch):
    monkeypatch.setenv("ALLOWED_USER_IDS", "11, 22,")
    monkeypatch.setenv("ADMIN_USER_IDS", "")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:SECRET")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SECRET")
    settings = Settings()
    assert settings.allowed_user_ids == [11, 22] and settings.admin_user_ids == []
    assert "SECRET" not in repr(settings) and "SECRET" not in str(settings.model_dump())


@pytest.mark.parametrize(
    "command",
    [["cli.main", "list"], ["bot"], ["launcher.run", "--once"], ["celery", "-A", "tasks", "worker"]],
)
@pytest.mark.slow
def test_a_bad_setting_stops_every_entry_point_with_one_line_naming_it(command, tmp_path):
    env = {**os.environ, "ADMIN_USER_IDS": "@alice", "MARKETRANK_VAR_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: bad setting ADMIN_USER_IDS=@alice: '@alice' is not a Telegram user id: "
        "give numbers, e.g. 123456789,987654321 (@userinfobot tells a user theirs)"
    ]


def test_a_bad_setting_is_one_line_naming_it_without_a_secret_or_a_url_password():
    import pytest
    from pydantic import ValidationError

    from analysis.settings import settings_problem

    shown = []
    for bad in (
        {"ccxt_api_url": "ftp://user:hunter2@exchange"},
        {"telegram_bot_token": 12345},
        {"health_min_steps": 0},
    ):
        with pytest.raises(ValidationError) as refused:
            Settings(**bad)
        shown.append(settings_problem(refused.value))
    assert shown[0].startswith("bad setting CCXT_API_URL=ftp://user:***@exchange: ")
    assert shown[1] == "bad setting TELEGRAM_BOT_TOKEN: Input should be a valid string"
    assert shown[2] == "bad setting HEALTH_MIN_STEPS=0: Input should be greater than or equal to 1"
    assert not [line for line in shown if "hunter2" in line or "12345" in line or "\n" in line]
