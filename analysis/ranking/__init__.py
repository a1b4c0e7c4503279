"""Ranking: strategies by name, Bradley-Terry estimation, the LLM judge. No Redis keys here."""
