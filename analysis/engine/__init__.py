"""The step engine: the step protocol in Redis (keys, Lua scripts, the store, the step runner,
the event stream) and the Redis-backed stores the ranking uses (candle snapshot, LLM answer cache)."""
