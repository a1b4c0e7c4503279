"""Who is in a group, as Telegram keeps it: a member's status per chat (creator, administrator,
member, left, kicked), groups that were deleted, and the Bot API methods that read them
(getChatMember, getChatAdministrators). Tests change membership as users would (join, leave, be
made an admin, delete the group).

A mixin of `BotApiServer`; Bot API methods run with the server's lock held, the test API takes it.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import bad_request
from sandbox.records import UploadedFile, _Chat

STATUSES = ("creator", "administrator", "member", "left", "kicked")
ADMINS = ("creator", "administrator")
# What Telegram's ChatMemberAdministrator carries besides the user (all required by clients).
_ADMIN_RIGHTS = dict(
    can_be_edited=False,
    is_anonymous=False,
    can_manage_chat=True,
    can_delete_messages=True,
    can_manage_video_chats=True,
    can_restrict_members=True,
    can_promote_members=False,
    can_change_info=True,
    can_invite_users=True,
    can_post_stories=False,
    can_edit_stories=False,
    can_delete_stories=False,
)


class Membership:
    # --- the test API: what users do -------------------------------------------------------------
    def set_member(
        self, chat_id: int, user_id: int, status: str = "member", *, first_name: str = "Tester"
    ) -> None:
        """`user_id` has `status` in the group `chat_id` (joins, leaves, is made an admin...)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        if chat_id > 0:
            raise ValueError("membership is kept for groups (negative chat ids)")
        with self._lock:
            if user_id not in self._users:
                self._user(user_id, first_name, None)
            self._chat(chat_id).members[user_id] = status

    def leave_group(self, chat_id: int, user_id: int) -> None:
        self.set_member(chat_id, user_id, "left")

    def delete_group(self, chat_id: int) -> None:
        """The group is deleted: every method naming it answers 400 "chat not found"."""
        with self._lock:
            self._chat(chat_id).deleted = True

    def joined_by_writing(self, chat: _Chat, user_id: int) -> None:
        """A user who writes in a group is in it (unless the test said otherwise)."""
        if chat.info["id"] < 0:
            chat.members.setdefault(user_id, "member")

    # --- the Bot API ------------------------------------------------------------------------------
    def _get_chat_member(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        chat = self._target_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise bad_request("invalid user_id specified")
        if chat.info["type"] == "private":
            status = "member" if user_id in (chat.info["id"], self.bot_id) else "left"
        else:
            status = chat.members.get(user_id, "left")
        return self._member_json(user_id, status)

    def _get_chat_administrators(
        self, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> list[dict[str, Any]]:
        chat = self._target_chat(params)
        if chat.info["type"] == "private":
            raise bad_request("there are no administrators in the private chat")
        return [
            self._member_json(user_id, status) for user_id, status in chat.members.items() if status in ADMINS
        ]

    def _member_json(self, user_id: int, status: str) -> dict[str, Any]:
        if user_id == self.bot_id:
            user = dict(self._bot_sender)
        else:
            known = self._users.get(user_id, {})
            user = {"id": user_id, "is_bot": False, "first_name": known.get("first_name", f"User{user_id}")}
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "administrator":
            member.update(_ADMIN_RIGHTS)
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "kicked":
            member["until_date"] = 0
        return member
