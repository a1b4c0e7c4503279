"""The track record: pick records, forward returns, metrics, aggregation, baselines, the replay.

Imports markets and ranking (to score as the live strategy does), never engine, telegram or celery.
"""
