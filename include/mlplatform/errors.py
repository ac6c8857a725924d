"""One exception hierarchy, so callers (DAG tasks, CLI) can tell platform errors from bugs."""


class PlatformError(Exception):
    """Base class for every error this package raises on purpose."""


class SpecError(PlatformError):
    """A use-case spec is invalid; the message names the file, the field and the fix."""


class ConfigError(PlatformError):
    """The environment (settings, connections) is incomplete or contradictory."""


class DataQualityError(PlatformError):
    """Input data failed a critical check; the message names each failed check with samples."""


class TransformError(PlatformError):
    """dbt failed; the message names the failing nodes."""


class ModelNotAvailableError(PlatformError):
    """No model version may be used for the requested date (none promoted yet, or none as of then)."""


class PublishError(PlatformError):
    """A publication could not be completed; the previous publication stays valid."""
