"""Section `opcua:` of the station YAML (off unless present and `enabled`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.access.users import User, require_users
from edge.sidecar import HelperPriority


class OpcUaSettings(BaseModel):
    """The OPC UA server. Signed and encrypted endpoints (Basic256Sha256) with user names
    and passwords; the unsecured endpoint only with `allow_none`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    host: str = Field(default="0.0.0.0", description="bind address (PLCs connect from the line's network)")
    port: int = Field(default=4840, ge=0, le=65535, description="0: any free port (tests)")
    users: dict[str, User] = Field(default_factory=dict, description="user name -> role and password hash")
    allow_none: bool = Field(
        default=False, description="also offer the unsecured endpoint (SecurityPolicy None); logged as a warning"
    )
    pki_dir: Path = Field(
        default=Path("opcua_pki"),
        description="own/ (the server's key and certificate, made on first start), trusted/ (client certificates)",
    )
    application_uri: str = Field(default="urn:eiad-edge:station", description="goes into the server's certificate")
    namespace_uri: str = Field(default="urn:eiad-edge:machine-vision", description="namespace of the station's nodes")
    result_store: int = Field(default=1000, ge=10, description="recent results GetResultById can return")
    max_handles: int = Field(default=100, ge=1, description="results held for clients until released")
    queue_size: int = Field(default=256, ge=1, description="results waiting for the server; more are dropped (counted)")
    min_publishing_interval_ms: float = Field(
        default=100.0,
        ge=0.0,
        description="subscriptions asking for a faster publishing cycle get this one; ResultReady events are "
        "sent as they are raised whatever the cycle (it carries keep-alives and variable changes)",
    )
    nice: HelperPriority = Field(
        default=10,
        description="the server runs in its own process at a lower CPU priority, so the inspection loop goes "
        "first: a nice value (0-19), or idle (Linux SCHED_IDLE: only the CPU time the loop leaves)",
    )

    @model_validator(mode="after")
    def _someone_can_log_in(self) -> OpcUaSettings:
        require_users("opcua", self.enabled, self.users)
        return self
