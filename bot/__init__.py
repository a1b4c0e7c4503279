"""The Telegram front of marketrank: thin handlers, pure views, and the card notifier."""
