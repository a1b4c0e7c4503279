"""Every Redis key marketrank uses, built in one place.

| key                          | type   | TTL                        | holds                                   |
|------------------------------|--------|----------------------------|-----------------------------------------|
| {p}analysis:{id}             | hash   | GIST_TTL_S                 | the gist: config, status, seq, state... |
| {p}history:{id}              | list   | GIST_TTL_S                 | one JSON entry per committed step       |
| {p}candles:{id}              | hash   | GIST_TTL_S; REFINE_WINDOW_S once completed, none once cancelled/failed | the data snapshot: symbol -> block refs |
| {p}block:{sha256}            | string | CANDLE_CACHE_TTL_S, raised to GIST_TTL_S by a snapshot | candles, content-addressed (zlib JSON) |
| {p}series:{src}:{tf}:{sym}   | string | CANDLE_CACHE_TTL_S         | cached candles of a market: block refs  |
| {p}serieslock:{src}:{tf}:{sym} | string | PX, ~CCXT_TIMEOUT_S x tries | the one process fetching that series  |
| {p}exchange:{src}:{what}     | string | CCXT_MARKETS_TTL_S / CCXT_TICKERS_TTL_S | markets, 24 h volumes (JSON) |
| {p}ratelimit:{src}           | hash   | 60 s (PX), refreshed       | token bucket shared by every process    |
| {p}control:{id}              | hash   | CONTROL_TTL_S, refreshed   | wanted state, chain token               |
| {p}lease:{id}                | string | LEASE_MS (PX), heartbeat   | attempt token of the executing step     |
| {p}owner:{owner}             | zset   | GIST_TTL_S, refreshed by a start; expired members pruned at a start | the owner's analyses by creation time |
| {p}active:{owner}            | set    | none (expired ids pruned)  | the owner's analyses not yet final      |
| {p}restarts:{owner}          | zset   | 1 hour, refreshed          | refines that restarted a completed analysis, by time (`id:generation`): they count toward the hourly quota like starts |
| {p}analyses                  | zset   | none; expired members pruned by the watchdog | every analysis by creation time |
| {p}live                      | set    | none; final/expired members pruned by the watchdog | every analysis not yet final (watched) |
| {p}events                    | stream | capped (MAXLEN ~)          | progress events; bots read them with the consumer group bot:{bot id} |
| {p}failures                  | list   | capped (LTRIM)             | recent step failures, for admins        |
| {p}llmcache:{sha256}         | string | LLM_CACHE_TTL              | one cached LLM answer                   |
| {p}card:{id}                 | hash   | GIST_TTL_S                 | the bot's status card (chat, message); flags finished:{gen}, held (#24) |
| {p}update:{bot}:{update_id}  | string | 1 day                      | a Telegram update the bot has handled   |
| {p}cardlock:{id}             | string | CARD_LOCK_MS (PX)          | the one bot instance editing that card now (token) |
| {p}schedule:{id}             | hash   | none: until removed        | a recurring analysis (analysis/schedules/store.py) |
| {p}schedules                 | zset   | none                       | every schedule by creation time         |
| {p}schedules:{owner}         | zset   | none                       | the owner's schedules by creation time  |
| {p}beat:{entry}              | hash   | none: until removed        | celery-redbeat's entry (definition, meta); entries `watchdog`, `track`, `schedule:{id}` |
| {p}beat::schedule            | zset   | none                       | celery-redbeat: entry keys by next due time (UTC epoch) |
| {p}beat::lock                | string | 5 x BEAT_MAX_LOOP_S, renewed | celery-redbeat: the one beat allowed to fire |
| {p}beat::statics             | set    | none                       | celery-redbeat: names of the static entries (watchdog) |
| {p}steps:{minute}            | hash   | 2 hours                    | step outcomes in that minute (ok, failed, judge, data, ...) |
| {p}alert:{cause}             | string | ALERT_THROTTLE_S           | an alert of that cause was sent (throttle) |
| {p}health:level              | string | none                       | the health level admins were last told  |
| {p}chart:{id}:{seq}          | string | CHART_CACHE_TTL_S          | the chart PNG of that state of the analysis (bot) |
| {p}chartdraw:{id}:{seq}      | string | 30 s (PX)                  | a bot process is drawing that chart: other presses wait for it |
| {p}chartpresses:{user}       | string | 60 s from its first press  | the user's charts sent this minute (bot) |
| {p}track:rec:{id}:{seq}      | string | TRACK_RETENTION_DAYS + 2 d | a pick record (JSON, immutable; docs/track-record.md) |
| {p}track:res:{id}:{seq}      | hash   | TRACK_RETENTION_DAYS + 2 d | its metrics per horizon (field = bars, JSON) |
| {p}track:all                 | zset   | none; members older than the retention pruned | every record id by when it was written (s) |
| {p}track:group:{group}       | zset   | none; pruned likewise      | record ids of one (strategy, timeframe, source) by t (ms) |
| {p}track:due                 | zset   | none; pruned likewise      | record ids not fully evaluated, by when to look again (s) |
| {p}track:sched:{schedule}    | zset   | none; pruned likewise      | a schedule's record ids by t (turnover, previous run) |
| {p}settings:{user}           | hash   | none: until changed        | a user's settings: zone, quiet, mode:{kind} (analysis/user_settings.py) |
| {p}held:{user}               | list   | QUIET_HELD_TTL_S, capped at QUIET_MAX_HELD | messages held in the user's quiet hours (JSON), oldest first |
| {p}held                      | set    | none; members removed when their digest is taken | users with held messages |
| {p}metrics                   | hash   | none: counters only grow   | Prometheus counters of every process (analysis/metrics.py) |
| {p}maintenance               | hash   | none: until `maintenance off` | maintenance is on: since, by (no step begins) |
| {p}replication:probe         | string | none: one key, overwritten | written before WAIT after a start (with Sentinel; analysis/db/replication.py) |

The `beat:` keys are written by celery-redbeat itself (tasks/celery_app.py gives it the prefix
`beat_prefix()`); user schedules and their beat entries are removed together.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "mr:"

    def gist(self, analysis_id: str) -> str:
        return f"{self.prefix}analysis:{analysis_id}"

    def history(self, analysis_id: str) -> str:
        return f"{self.prefix}history:{analysis_id}"

    def candles(self, analysis_id: str) -> str:
        return f"{self.prefix}candles:{analysis_id}"

    def block(self, digest: str) -> str:
        return f"{self.prefix}block:{digest}"

    def series(self, source: str, timeframe: str, symbol: str) -> str:
        return f"{self.prefix}series:{source}:{timeframe}:{symbol}"

    def series_lock(self, source: str, timeframe: str, symbol: str) -> str:
        return f"{self.prefix}serieslock:{source}:{timeframe}:{symbol}"

    def exchange(self, source: str, what: str) -> str:
        return f"{self.prefix}exchange:{source}:{what}"

    def rate_limit(self, source: str) -> str:
        return f"{self.prefix}ratelimit:{source}"

    def control(self, analysis_id: str) -> str:
        return f"{self.prefix}control:{analysis_id}"

    def lease(self, analysis_id: str) -> str:
        return f"{self.prefix}lease:{analysis_id}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    def active(self, owner: str) -> str:
        return f"{self.prefix}active:{owner}"

    def restarts(self, owner: str) -> str:
        return f"{self.prefix}restarts:{owner}"

    def analyses(self) -> str:
        return f"{self.prefix}analyses"

    def live(self) -> str:
        return f"{self.prefix}live"

    def events(self) -> str:
        return f"{self.prefix}events"

    def failures(self) -> str:
        return f"{self.prefix}failures"

    def llm_cache(self, digest: str) -> str:
        return f"{self.prefix}llmcache:{digest}"

    def card(self, analysis_id: str) -> str:
        return f"{self.prefix}card:{analysis_id}"

    def card_lock(self, analysis_id: str) -> str:
        return f"{self.prefix}cardlock:{analysis_id}"

    def update(self, bot_id: int, update_id: int) -> str:
        return f"{self.prefix}update:{bot_id}:{update_id}"

    def schedule(self, schedule_id: str) -> str:
        return f"{self.prefix}schedule:{schedule_id}"

    def schedules(self) -> str:
        return f"{self.prefix}schedules"

    def schedules_of(self, owner: str) -> str:
        return f"{self.prefix}schedules:{owner}"

    def beat_prefix(self) -> str:
        """celery-redbeat's key prefix (it appends entry names and `:schedule`, `:lock`...)."""
        return f"{self.prefix}beat:"

    def beat_due(self) -> str:
        """celery-redbeat's sorted set of entry keys by next due time."""
        return f"{self.beat_prefix()}:schedule"

    def beat_entry(self, name: str) -> str:
        return f"{self.beat_prefix()}{name}"

    def step_stats(self, minute: int) -> str:
        return f"{self.prefix}steps:{minute}"

    def alert(self, cause: str) -> str:
        return f"{self.prefix}alert:{cause}"

    def health_level(self) -> str:
        return f"{self.prefix}health:level"

    def chart(self, analysis_id: str, seq: int) -> str:
        return f"{self.prefix}chart:{analysis_id}:{seq}"

    def chart_drawing(self, analysis_id: str, seq: int) -> str:
        return f"{self.prefix}chartdraw:{analysis_id}:{seq}"

    def chart_presses(self, user: str) -> str:
        return f"{self.prefix}chartpresses:{user}"

    def track_record(self, record_id: str) -> str:
        return f"{self.prefix}track:rec:{record_id}"

    def track_result(self, record_id: str) -> str:
        return f"{self.prefix}track:res:{record_id}"

    def track_all(self) -> str:
        return f"{self.prefix}track:all"

    def track_group(self, group: str) -> str:
        return f"{self.prefix}track:group:{group}"

    def track_due(self) -> str:
        return f"{self.prefix}track:due"

    def track_schedule(self, schedule_id: str) -> str:
        return f"{self.prefix}track:sched:{schedule_id}"

    def user_settings(self, user: str) -> str:
        return f"{self.prefix}settings:{user}"

    def held(self, user: str) -> str:
        return f"{self.prefix}held:{user}"

    def held_users(self) -> str:
        return f"{self.prefix}held"

    def maintenance(self) -> str:
        """Exists while maintenance is on (analysis/maintenance.py); BEGIN_STEP and COMMIT_STEP
        read it."""
        return f"{self.prefix}maintenance"

    def metrics(self) -> str:
        """Prometheus counters every process adds to (analysis/metrics.py)."""
        return f"{self.prefix}metrics"

    def replication_probe(self) -> str:
        """Written before WAIT after a trader's action (analysis/db/replication.py): its offset in
        the replication stream comes after the action's, whatever connection wrote that."""
        return f"{self.prefix}replication:probe"
