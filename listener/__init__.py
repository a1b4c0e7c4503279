"""The HTTP listener: one small aiohttp process that serves what the project shows over HTTP
(today a schedule's top K for freqtrade, `EXPORT_PORT`; Prometheus metrics may join on their own
port). Each feature registers its own routes (`listener.app.Feature`); one process serves several
ports, each with the features planned on it. Every port is a door (`listener.door`): a Host on the
allow-list, no answer a page on another origin can use, one-line errors; each route checks its own
token."""
