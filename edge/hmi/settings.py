"""Section `hmi:` of the station YAML (off unless present and `enabled`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.access.users import User, require_users
from edge.sidecar import HelperPriority


class HmiSettings(BaseModel):
    """The operator's page. Everything it shows is read from bounded buffers fed by a sink:
    a slow or hung browser can never hold up the inspection loop."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="bind address; put a TLS reverse proxy in front for others")
    port: int = Field(default=8080, ge=0, le=65535, description="0: any free port (tests)")
    users: dict[str, User] = Field(default_factory=dict, description="login name -> role and password hash")
    review_dir: Path = Field(default=Path("review"), description="operators' judgements, in the DDQA raw layout")
    data_dir: Path = Field(default=Path("hmi"), description="the history index (SQLite) and its images")
    save: Literal["all", "ng"] = Field(
        default="all", description="which parts keep their image for review (all: a missed defect can be marked)"
    )
    history_max_items: int = Field(default=5000, ge=10, description="inspections kept; the oldest go first")
    ok_pictures_kept: int = Field(
        default=300,
        ge=0,
        description="with save: all, the last OK parts' frames kept in memory (~150 KB each at 224 x 224) and written "
        "only when viewed or judged (or at stop); older OK parts have no picture. 0: write every OK frame at once",
    )
    recent_ng: int = Field(default=12, ge=1, le=100, description="NG parts in the page's strip")
    queue_size: int = Field(default=64, ge=1, description="results waiting for the page's writer; more are dropped")
    client_queue: int = Field(default=32, ge=1, description="updates waiting per browser; a slow one loses the oldest")
    max_clients: int = Field(default=16, ge=1, description="browsers streaming at once")
    live_ok_hz: float = Field(
        default=4.0,
        gt=0,
        description="OK parts pushed to browsers at most this often per camera (the newest wins); NG parts always "
        "go at once, and the history keeps every part",
    )
    nice: HelperPriority = Field(
        default=10,
        description="the page runs in a process of its own at a lower CPU priority, so the inspection loop goes "
        "first: a nice value (0-19), or idle (Linux SCHED_IDLE: only the CPU time the loop leaves)",
    )
    session_hours: float = Field(default=12.0, gt=0, description="a login lasts this long")
    secure_cookie: bool = Field(default=False, description="true behind a TLS proxy: the cookie only over https")
    login_attempts: int = Field(default=5, ge=1, description="failed logins per client per minute before 429")

    @model_validator(mode="after")
    def _someone_can_log_in(self) -> HmiSettings:
        require_users("hmi", self.enabled, self.users)
        return self
