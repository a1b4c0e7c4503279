"""Who may use marketrank: the one rule the bot (on every update) and the schedules (at every
run, for the schedule's owner) both apply."""

from analysis.settings import Settings


def may_trade(
    allowed_user_ids: frozenset[int] | list[int], admin_user_ids: frozenset[int] | list[int], user_id: int
) -> bool:
    """ALLOWED_USER_IDS empty lets anyone trade; admins always may."""
    return not allowed_user_ids or user_id in allowed_user_ids or user_id in admin_user_ids


def owner_may_trade(settings: Settings, owner: str) -> bool:
    """An owner that is a Telegram user id must still be allowed; other owners are CLI names,
    and the CLI is the operators' tool."""
    if not owner.isdigit():
        return True
    return may_trade(settings.allowed_user_ids, settings.admin_user_ids, int(owner))
