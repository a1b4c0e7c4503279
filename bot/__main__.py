"""`python -m bot`: run the Telegram bot (long polling, or the webhook with TELEGRAM_WEBHOOK_URL)."""

import sys

from bot.app import main

sys.exit(main())
