"""The names of the market-data sources and how a spec of each is written: what MARKET_DATA is
checked against when the settings are read.

The builders are in registry.py, which needs the settings (a live source takes its Redis and
exchange settings from them); keeping the names here lets the settings check a spec without
importing what builds it. The built-in sources are `demo`, `csv:<dir>` and `ccxt:<exchange id>`.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceForm:
    usage: str  # how a spec of it is written, for refusals
    takes_argument: bool  # `<prefix>:<argument>`, or the bare `<prefix>`


_FORMS: dict[str, SourceForm] = {
    "demo": SourceForm("demo", takes_argument=False),
    "csv": SourceForm("csv:<dir>", takes_argument=True),
    "ccxt": SourceForm("ccxt:<exchange id>", takes_argument=True),
}


def declare_source(prefix: str, usage: str, takes_argument: bool = True) -> None:
    """A source registered at run time (registry.register_provider: tests' doubles)."""
    _FORMS[prefix] = SourceForm(usage, takes_argument)


def accepted_specs() -> list[str]:
    return [form.usage for form in _FORMS.values()]


def spec_problem(spec: str) -> str | None:
    """Why `spec` names no known source ("is not a data source: use ..."), or None."""
    prefix, sep, argument = spec.partition(":")
    form = _FORMS.get(prefix)
    if form is not None and (bool(sep and argument) if form.takes_argument else not sep):
        return None
    forms = " or ".join(repr(usage) for usage in accepted_specs())
    return f"is not a data source: use {forms}"
