"""The station configuration (`station.yaml`): pydantic v2, validated once at start.

Every section forbids unknown keys; units are in the names. `load_station_config` reads
the YAML and turns every validation error into "file:line: key.path: message", so a line
engineer can go straight to the line (`eiad edge validate-config` prints them all).
Relative paths are relative to the YAML file's folder. Config objects do no I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from edge.explainer.config import ExplainerConfig
from edge.hmi.settings import HmiSettings
from edge.opcua.settings import OpcUaSettings
from edge.sinks.archive import ArchiveSettings
from edge.sinks.mqtt.config import MqttSettings, OutboxSettings
from edge.verdict import ThresholdOverrides
from eiad.errors import ConfigError

RTSP_LOW_LATENCY = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay"
_ID = r"^[A-Za-z0-9_.-]+$"  # ends up in topics, metric labels and inspection ids


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SourceBase(_Strict):
    id: str = Field(pattern=_ID, description="camera name, unique in the station")
    policy: Literal["triggered", "free_running"] = Field(
        default="triggered", description="triggered: never drop (block + alarm); free_running: keep the newest"
    )
    queue_capacity: int = Field(default=4, ge=1, le=1024, description="frames waiting for inference")
    staleness_budget_ms: float | None = Field(
        default=500.0, gt=0, description="free_running: drop frames older than this at dequeue"
    )
    stall_timeout_s: float = Field(default=10.0, gt=0, description="no frame for this long -> restart the source")
    restart_backoff_s: float = Field(default=1.0, gt=0, description="first wait before reopening; doubles")
    restart_backoff_max_s: float = Field(default=30.0, gt=0)
    plc_trigger: bool = Field(
        default=False,
        description="read a frame only when a PLC asks (OPC UA method VisionSystem.TriggerInspection); "
        "a GenICam camera should then use trigger: software",
    )


class VideoSourceConfig(_SourceBase):
    kind: Literal["video"]
    path: Path
    loop: bool = Field(default=False, description="start again at the end (demo camera)")


class UsbSourceConfig(_SourceBase):
    kind: Literal["usb"]
    policy: Literal["triggered", "free_running"] = "free_running"
    device: int = Field(default=0, ge=0, description="V4L2 index: /dev/videoN")
    width_px: int | None = Field(default=None, gt=0)
    height_px: int | None = Field(default=None, gt=0)
    fps: float | None = Field(default=None, gt=0)


class RtspSourceConfig(_SourceBase):
    kind: Literal["rtsp"]
    policy: Literal["triggered", "free_running"] = "free_running"
    url: str = Field(min_length=1, description="rtsp://..., or any URL FFmpeg reads (tcp://, http://)")
    ffmpeg_options: str = Field(
        default=RTSP_LOW_LATENCY, description="OPENCV_FFMPEG_CAPTURE_OPTIONS set before opening"
    )


class FolderSourceConfig(_SourceBase):
    kind: Literal["folder"]
    path: Path
    patterns: list[str] = Field(default_factory=lambda: ["*.png", "*.jpg", "*.jpeg", "*.bmp", "*.tif", "*.tiff"])
    watch: bool = Field(default=False, description="keep watching for new files instead of ending")
    settle_ms: float = Field(
        default=500.0, ge=0, description="watch: a file must be unchanged this long before it is read"
    )
    poll_interval_ms: float = Field(default=200.0, gt=0)
    move_done_to: Path | None = Field(default=None, description="move each read file here (else left in place)")


class SyntheticSourceConfig(_SourceBase):
    kind: Literal["synthetic"]
    path: Path = Field(description="the synthetic line's video file")
    truth: Path | None = Field(
        default=None, description="ground-truth JSONL sidecar; default: ground_truth.jsonl beside the video"
    )
    loop: bool = False


class GenicamSourceConfig(_SourceBase):
    kind: Literal["genicam"]
    cti: Path = Field(description="the camera vendor's GenTL producer (.cti)")
    serial: str | None = Field(default=None, description="camera serial number; default: the first camera found")
    trigger: Literal["off", "software", "hardware"] = "hardware"
    trigger_source: str = Field(default="Line0", description="hardware trigger input (GenICam TriggerSource)")
    exposure_us: float | None = Field(default=None, gt=0)
    fetch_timeout_s: float = Field(default=1.0, gt=0, description="one fetch; no trigger within it is not an error")


SourceConfig = Annotated[
    VideoSourceConfig
    | UsbSourceConfig
    | RtspSourceConfig
    | FolderSourceConfig
    | SyntheticSourceConfig
    | GenicamSourceConfig,
    Field(discriminator="kind"),
]


class OnnxRuntimeRunnerConfig(_Strict):
    kind: Literal["onnxruntime"] = "onnxruntime"
    providers: Literal["auto"] | list[str] = Field(
        default="auto", description="auto: TensorRT EP -> CUDA EP -> CPU, those installed"
    )
    engine_cache_dir: Path | None = Field(
        default=None, description="TensorRT EP engine + timing cache; default <artifact>/trt_cache"
    )
    intra_op_threads: int = Field(default=0, ge=0, description="0: ONNX Runtime decides")


class TensorRtRunnerConfig(_Strict):
    kind: Literal["tensorrt"]
    engine: Path | None = Field(
        default=None,
        description="default: the artifact's one engine from 'eiad export tensorrt' (several engines: required)",
    )


class TorchRunnerConfig(_Strict):
    kind: Literal["torch"]
    checkpoint: Path = Field(description="the localization checkpoint the artifact was exported from (needs torch)")
    device: str = Field(default="cuda", pattern=r"^(cpu|cuda(:[0-9]+)?)$", description="cuda, cuda:N or cpu")
    cuda_graphs: bool = Field(
        default=True, description="replay each batch size as one CUDA graph (a small engine is launch-bound without)"
    )
    threads: int = Field(default=0, ge=0, description="device cpu only: torch intra-op threads; 0 = torch decides")


class BatchingConfig(_Strict):
    max_batch: int = Field(default=1, ge=1, le=64, description="frames per inference, across cameras")
    max_wait_ms: float = Field(default=2.0, ge=0, description="how long the first frame waits for others")


class FramesConfig(_Strict):
    wrong_size: Literal["reject", "resize"] = Field(
        default="reject", description="frame size differs from the model input"
    )
    blank_max_std: float = Field(
        default=2.0,
        ge=0,
        le=128,
        description="REJECT frames whose pixel standard deviation (grey levels, 0-255) is below this: covered lens, "
        "lights off, dead sensor; the default 2.0 suits lit scenes; 0 = off (e.g. a deliberately uniform target)",
    )


class MetricsConfig(_Strict):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(
        default=9108, ge=0, le=65535, description="GET /metrics (Prometheus) and /health (JSON); 0 = any free port"
    )


class StationConfig(_Strict):
    station_id: str = Field(pattern=_ID)
    line_id: str = Field(pattern=_ID)
    artifact: Path = Field(description="export artifact folder (holds manifest.json)")
    sources: list[SourceConfig] = Field(min_length=1)
    runner: Annotated[
        OnnxRuntimeRunnerConfig | TensorRtRunnerConfig | TorchRunnerConfig, Field(discriminator="kind")
    ] = OnnxRuntimeRunnerConfig()
    batching: BatchingConfig = BatchingConfig()
    frames: FramesConfig = FramesConfig()
    thresholds: ThresholdOverrides = ThresholdOverrides()
    metrics: MetricsConfig = MetricsConfig()
    mqtt: MqttSettings | None = Field(default=None, description="omit to run without MQTT (log only)")
    outbox: OutboxSettings = OutboxSettings()
    archive: ArchiveSettings | None = Field(
        default=None, description="NG images + masks + JSON on disk; omit to keep none"
    )
    explainer: ExplainerConfig | None = Field(
        default=None, description="language-model explanations; needs the artifact's llm/ folder"
    )
    hmi: HmiSettings | None = Field(
        default=None, description="the operator's web page (omit: no page); see docs/hmi.md"
    )
    opcua: OpcUaSettings | None = Field(
        default=None, description="an OPC UA server after OPC 40100 for PLCs (omit: none); see docs/opcua.md"
    )
    sequence_file: Path | None = Field(
        default=Path("sequence.state"),
        description="last sequence number, so numbering continues after a restart; null: restart at 1",
    )
    _base_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="before")
    @classmethod
    def _mqtt_names_from_station(cls, data):
        """mqtt/archive line and station default to line_id / station_id (no need to repeat them)."""
        for section in ("mqtt", "archive"):
            if isinstance(data, dict) and isinstance(data.get(section), dict):
                values = dict(data[section])
                values.setdefault("line", data.get("line_id"))
                values.setdefault("station", data.get("station_id"))
                data = {**data, section: values}
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> StationConfig:
        ids = [s.id for s in self.sources]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"source ids must be unique; repeated: {dupes}")
        return self

    def path(self, value: Path) -> Path:
        """`value` resolved against the YAML file's folder."""
        return value if value.is_absolute() else self._base_dir / value


def load_station_config(path: Path) -> StationConfig:
    """Read and validate a station YAML; ConfigError lists every problem with its line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"station config {path} not found; start from configs/station.yaml")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        config = StationConfig.model_validate(data)
    except ValidationError as error:
        lines = [f"{path}:{_line_of(root, e['loc'])}: {_dotted(e['loc'])}: {e['msg']}" for e in error.errors()]
        raise ConfigError(f"{len(lines)} problem(s) in the station config:\n  " + "\n  ".join(lines)) from None
    config._base_dir = path.resolve().parent
    return config


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(node, loc: tuple) -> int:
    """The 1-based YAML line of the deepest node on `loc` (the key's line for mappings)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                if _kind_of(node) == part:  # pydantic puts the union tag in the path: skip it
                    continue
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _kind_of(node: yaml.MappingNode) -> str | None:
    return next((v.value for k, v in node.value if k.value == "kind" and isinstance(v, yaml.ScalarNode)), None)
