"""`marketrank maintenance on|off|status|wait`: quiesce the work for a deploy (docs/operations.md,
"Upgrading")."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from analysis.maintenance import MaintenanceService, describe
from analysis.service import Actor, AnalysisService

OK, NOT_DONE = 0, 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    maintenance = sub.add_parser(
        "maintenance",
        help="on: running analyses stop at their next step "
        "and nothing new starts; off: resume what it stopped",
    )
    actions = maintenance.add_subparsers(dest="maintenance_command", required=True)
    actions.add_parser("on", help="turn maintenance on")
    actions.add_parser("off", help="turn it off and resume the analyses it halted")
    status = actions.add_parser("status", help="on or off, and the steps still in flight")
    status.add_argument("--json", action="store_true")
    wait = actions.add_parser("wait", help="wait until no step is in flight (exit 1 on --timeout)")
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")


def run(
    args: argparse.Namespace,
    service: AnalysisService,
    actor: Actor,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    maintenance = MaintenanceService(service)
    command = args.maintenance_command
    if command in ("on", "off"):
        change = maintenance.on(actor) if command == "on" else maintenance.off(actor)
        print(change.message)
        return OK
    if command == "status":
        status = maintenance.status()
        print(json.dumps(status.to_dict()) if args.json else describe(status))
        return OK
    deadline = time.monotonic() + args.timeout
    while (status := maintenance.status()).in_flight > 0:
        if time.monotonic() >= deadline:
            print(describe(status))
            return NOT_DONE
        sleep(0.5)
    print(describe(status))
    return OK
