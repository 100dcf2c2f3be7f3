"""Roles of admin users: ``admin`` may do everything, ``observer`` may only read."""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["admin", "observer"]
ADMIN_ROLES: tuple[str, ...] = get_args(Role)
