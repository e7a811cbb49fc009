"""What the synthetic line can make: part types, defect types, and which go together.

Pure data (no numpy, no OpenCV) so `eiad data synth --help` can list it on any box.
"""

from __future__ import annotations

# Defect name -> what it looks like (the name is also the DDQA folder name).
DEFECT_TYPES: dict[str, str] = {
    "scratch": "thin curved line, bright (specular) or dark",
    "crack": "dark jagged branching fissure",
    "pitting": "cluster of many small dark pits (corrosion/porosity, BSData's defect)",
    "stain": "irregular translucent blot of oil, rust or dirt",
    "hole": "round or oval through-hole showing the belt, with a shadowed rim",
    "missing_material": "chipped edge or broken corner: the belt shows where material is gone",
}

# Part name -> (description, source, plausible defects). Source "photo" parts use real
# texture photographs shipped with scikit-image; "procedural" parts are drawn.
PART_TYPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "brushed_metal": (
        "machined plate with brushing marks",
        "procedural",
        ("scratch", "pitting", "stain", "hole"),
    ),
    "woven_fabric": (
        "plain-weave textile swatch",
        "procedural",
        ("hole", "stain", "scratch", "missing_material"),
    ),
    "pcb": (
        "green board with copper traces, pads and silkscreen",
        "procedural",
        ("scratch", "crack", "stain", "missing_material"),
    ),
    "cast_metal": (
        "sand-cast housing surface",
        "procedural",
        ("pitting", "crack", "hole", "missing_material"),
    ),
    "brick": (
        "fired brick tiles (real photograph: skimage brick)",
        "photo",
        ("crack", "missing_material", "stain"),
    ),
    "gravel": (
        "aggregate slab (real photograph: skimage gravel)",
        "photo",
        ("crack", "hole", "stain"),
    ),
    "grass": (
        "natural turf mat (real photograph: skimage grass)",
        "photo",
        ("hole", "stain", "missing_material"),
    ),
}

# Small default that builds in a few seconds: four procedural parts and one photograph.
DEFAULT_PARTS: tuple[str, ...] = ("brushed_metal", "woven_fabric", "pcb", "cast_metal", "brick")


def defects_for(part: str) -> tuple[str, ...]:
    """The defect types a part type can carry, in catalogue order."""
    return PART_TYPES[part][2]


def describe() -> str:
    """A short text listing part and defect types, for `--help`."""
    parts = "; ".join(f"{name} ({', '.join(spec[2])})" for name, spec in PART_TYPES.items())
    defects = "; ".join(f"{name}: {text}" for name, text in DEFECT_TYPES.items())
    return f"Part types (their defects): {parts}. Defect types: {defects}."
