"""build_services(): the one place that wires the analysis service, the schedule service and the
config factory over a runtime, for every front (bot, CLI, make run), the beat task and the tests.

The Celery side (dispatcher, broker's pending steps, beat registrar) is passed in, so analysis/
imports no Celery: wiring/ passes the real ones, tests their doubles.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.config_factory import RankingConfigFactory
from analysis.engine.runtime import Runtime
from analysis.engine.watch import PendingSteps, no_broker
from analysis.schedules.service import BeatRegistrar, ScheduleService
from analysis.schedules.store import ScheduleStore
from analysis.service import AnalysisService, StepDispatcher


@dataclass
class CoreServices:
    runtime: Runtime
    service: AnalysisService
    schedules: ScheduleService
    factory: RankingConfigFactory


def build_services(
    runtime: Runtime,
    dispatcher: StepDispatcher,
    registrar: BeatRegistrar,
    *,
    pending_steps: PendingSteps = no_broker,
) -> CoreServices:
    service = AnalysisService(runtime.store, dispatcher, pending_steps=pending_steps)
    factory = RankingConfigFactory(runtime.settings, runtime.provider)
    schedules = ScheduleService(
        ScheduleStore(runtime.redis, runtime.keys), service, factory, registrar, runtime.settings
    )
    return CoreServices(runtime=runtime, service=service, schedules=schedules, factory=factory)
