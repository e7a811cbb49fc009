"""The torch model: backbone adapters over transformers VLMs, presets, preprocessing spec.

Only `preprocess` and `grounding` are torch-free (the edge imports them); the rest is for
train/ and export/. Import submodules directly, e.g. `from eiad.modeling.backbone.loading import
load_backbone`.
"""
