"""The project's exception hierarchy.

Every error a user can cause derives from `EiadError`; its message says what is wrong
and what to do about it. The command line prints the message (no traceback) and exits
with status 2. Anything else is a bug and keeps its traceback.
"""


class EiadError(Exception):
    """An error the user can fix; the message names the file/key and the fix."""


class ConfigError(EiadError):
    """A configuration file or option is malformed or inconsistent."""


class DataError(EiadError):
    """Input data (images, masks, dataset trees, answer files) is missing or malformed."""


class ModelError(EiadError):
    """A model checkpoint, preset or backbone cannot be built or loaded."""


class ArtifactError(EiadError):
    """An export artifact is missing, corrupt, tampered with or does not fit."""


class SourceError(EiadError):
    """A camera or frame source cannot be opened or stopped delivering."""


class PublishError(EiadError):
    """A message cannot be delivered or stored for later delivery."""
