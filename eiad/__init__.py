"""EIAD Edge shared core: config schema, data contracts, artifact manifest, errors.

This package must import without torch or transformers: the edge box installs only it
and `edge/`. The torch model lives in `eiad.modeling`, imported by `train/` and
`export/` only.
"""

__version__ = "0.1.0"
