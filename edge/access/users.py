"""A user of the station's servers: a role and where the password hash is."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.access.passwords import check_hash_format

Role = Literal["operator", "viewer"]


class User(BaseModel):
    """One login. `operator` may act (judge parts on the page, call methods over OPC UA); `viewer` looks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role = "viewer"
    password_hash: str | None = Field(
        default=None, description="scrypt hash from 'eiad edge password-hash' (never the password itself)"
    )
    password_hash_env: str | None = Field(
        default=None, description="or: the environment variable holding that hash (kept out of the YAML)"
    )

    @model_validator(mode="after")
    def _one_hash(self) -> User:
        if (self.password_hash is None) == (self.password_hash_env is None):
            raise ValueError("give exactly one of password_hash or password_hash_env")
        if self.password_hash is not None:
            check_hash_format(self.password_hash)
        return self

    def stored_hash(self) -> str:
        """The password hash, read from the environment when configured so (checked at start)."""
        if self.password_hash is not None:
            return self.password_hash
        value = os.environ.get(self.password_hash_env or "", "")
        if not value:
            raise ValueError(f"environment variable {self.password_hash_env} is not set (it should hold the hash)")
        check_hash_format(value)
        return value


def require_users(section: str, enabled: bool, users: dict[str, User]) -> None:
    """ValueError when an enabled server has nobody who could log in to it."""
    if enabled and not users:
        raise ValueError(
            f"{section}.users is empty: add at least one user with a role and a password hash "
            "(make one with 'eiad edge password-hash'); anonymous access is never offered"
        )
