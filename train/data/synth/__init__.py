"""The synthetic production line: inspection images with pixel-exact defect masks.

    from train.data.synth import SynthConfig, generate_line
    report = generate_line(SynthConfig(seed=0), Path("out"))

`SynthConfig` and the catalogue import light (pydantic only); the generator (numpy,
OpenCV, scikit-image) loads on first use of `generate_line`/`SynthReport`.
"""

from train.data.synth.catalog import DEFAULT_PARTS, DEFECT_TYPES, PART_TYPES, defects_for
from train.data.synth.config import SynthConfig

__all__ = ["DEFAULT_PARTS", "DEFECT_TYPES", "PART_TYPES", "SynthConfig", "SynthReport", "defects_for", "generate_line"]


def __getattr__(name: str):
    if name in ("generate_line", "SynthReport"):
        from train.data.synth import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'train.data.synth' has no attribute {name!r}")
