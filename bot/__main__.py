"""`python -m bot`: run the Telegram bot (polling)."""

import sys

from bot.app import main

sys.exit(main())
