"""Celery front of marketrank: `celery -A tasks worker|beat|flower` finds `tasks.app`."""

from tasks.celery_app import app

__all__ = ["app"]
