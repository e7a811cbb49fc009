"""The `explainer:` section of station.yaml (edge/explainer/worker.py runs it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MqttRequestSettings(BaseModel):
    """`explainer.mqtt_requests`: accept explanation requests on `<prefix>/<line>/<station>/explain/request`.
    Absent (the default): the station subscribes to nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float = Field(1.0, gt=0, le=1000, description="accepted requests per second, sustained")
    burst: int = Field(10, ge=1, le=10_000, description="accepted requests allowed at once before rate_per_s applies")
    max_payload_bytes: int = Field(4096, ge=64, le=65536, description="larger requests are rejected unparsed")
    log_every_s: float = Field(60.0, gt=0, description="a rejection reason is logged at most once per this interval")


class ExplainerConfig(BaseModel):
    """The `explainer:` section of station.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    mode: Literal["all", "NG", "sampled", "on_request"] = Field("NG", description="which parts get an explanation")
    sample_every_n: int = Field(10, ge=1, description="mode 'sampled': explain every n-th part")
    backlog_max: int = Field(8, ge=1, description="parts waiting for an explanation; beyond it drop_policy applies")
    drop_policy: Literal["drop_oldest", "drop_newest"] = Field(
        "drop_oldest", description="backlog full: drop the oldest waiting part (explain the newest) or the new one"
    )
    precision: Literal["fp32", "int8", "int4"] = Field("int8", description="which exported LLM decoder to run")
    max_new_tokens: int = Field(80, ge=1, le=1024, description="a one-sentence description fits in it")
    remember_recent: int = Field(64, ge=0, description="recent parts kept so 'on_request' can still explain them")
    # One thread by default: explanations come later, the verdict path must keep its cores; with one
    # thread ONNX Runtime also runs on the (lower-priority, see nice) explainer thread itself.
    threads: int | None = Field(
        1,
        ge=1,
        description="ONNX Runtime intra-op threads of the language model "
        "(default 1; null: ONNX Runtime's default, one per core)",
    )
    nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Linux niceness of the explainer thread (0 = same as the verdict path, 19 = lowest): when both "
        "want a core, the verdicts get it first",
    )
    mqtt_requests: MqttRequestSettings | None = Field(
        None, description="accept explanation requests over MQTT (needs mqtt:); absent: no subscription"
    )

    @model_validator(mode="after")
    def _requests_need_memory(self) -> ExplainerConfig:
        if self.mqtt_requests is not None and self.remember_recent == 0:
            raise ValueError(
                "explainer.mqtt_requests needs explainer.remember_recent >= 1 "
                "(requests can only name parts the explainer still remembers)"
            )
        return self
