"""The step engine: the step protocol in Redis (the store, the step runner, the event stream;
its keys and Lua scripts are declared in analysis/db) and the Redis-backed stores the ranking uses
(candle snapshot, LLM answer cache)."""
