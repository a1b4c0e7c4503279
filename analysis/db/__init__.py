"""What marketrank keeps in Redis, declared once: every key and its type and TTL (keys.py), and
every Lua script with its named KEYS, ARGV and answers (scripts/, one module per owner,
declared with script.py).

The lowest layer of the core: it imports nothing else of marketrank, so the step engine, the
market data's candle cache and the bot's stores all build on it without importing each other."""
