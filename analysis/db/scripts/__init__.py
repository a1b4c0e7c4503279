"""Every Lua script marketrank runs, one module per owner; each is one atomic read-modify-write
across the keys it names, declared once as a `Script` (analysis/db/script.py) whose body reads
its KEYS and ARGV by name.

creation.py   an analysis's creation (gist, control key, indexes)
steps.py      the step protocol: begin, heartbeat, snapshot, commit, stop, storage full, LLM spend
controls.py   pause, resume, refine, cancel, force-resume
watch.py      the watchdog, /stuck and the live index's sweep
schedules.py  schedules: create, delete, claim a firing, update, resume
candles.py    the live data: candle blocks, the rate limit's token bucket, the fetch lock
alerts.py     admin alerts' throttle and the health level
prologue.py   the Lua the analysis scripts share (events, parking, the one rule for stuck)
"""
