"""Settings: every one documented in .env.example, lists parsed, secrets kept out of reprs."""

import re

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
