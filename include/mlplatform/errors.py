"""One exception hierarchy, so callers (DAG tasks, CLI) can tell platform errors from bugs.

Each class also says whether a retry can help (``retryable``): the Airflow glue fails a task at once,
without the spec's retries, on an error that a second attempt with the same input would meet again
(an invalid spec, bad data, a refused or missing model, a source not ready), and keeps the retries for
transient ones (storage or warehouse unreachable, a lock held by another task, dbt losing its connection).
"""

# Words of an error message that point to a passing condition rather than to the input itself.
TRANSIENT_MARKERS = (
    "could not connect", "cannot connect", "connection refused", "connection reset", "connection timed out",
    "connection closed", "server closed the connection", "terminating connection", "unreachable",
    "timed out", "timeout", "temporarily unavailable", "too many connections", "could not translate host",
    "name or service not known", "could not set lock", "is locked", "lock on file", "broken pipe",
)


def mentions_transient_cause(message: str) -> bool:
    """True when ``message`` names a connection, timeout or lock problem (worth a retry)."""
    text = message.lower()
    return any(marker in text for marker in TRANSIENT_MARKERS)


class PlatformError(Exception):
    """Base class for every error this package raises on purpose."""

    #: May a retry with the same input succeed? Unclassified platform errors (storage or warehouse
    #: unreachable, a lock, a half-written input) keep the task's retries.
    retryable: bool = True


class SpecError(PlatformError):
    """A use-case spec is invalid; the message names the file, the field and the fix."""

    retryable = False


class ConfigError(PlatformError):
    """The environment (settings, connections) is incomplete or contradictory."""

    retryable = False


class DataQualityError(PlatformError):
    """Input data failed a critical check (or is not there yet); the message names each failed check.

    Not retryable: the same data fails the same check; a source that is not ready for the date needs its
    loader, then a rerun of the date, not a retry five minutes later.
    """

    retryable = False


class TransformError(PlatformError):
    """dbt failed; the message names the failing nodes.

    Retryable only when dbt lost the warehouse (connection, timeout, lock); a failing model or data test
    fails again on the same data.
    """

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return mentions_transient_cause(str(self))


class ModelNotAvailableError(PlatformError):
    """No model version may be used for the requested date (none promoted yet, or none as of then)."""

    retryable = False


class PublishError(PlatformError):
    """A publication could not be completed; the previous publication stays valid."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a task that raised ``exc`` should be retried: False only for errors known to repeat.

    Errors outside the hierarchy (a library's connection error, a bug) keep the retries: without knowing
    the cause, a retry is the safer default.
    """
    return bool(getattr(exc, "retryable", True)) if isinstance(exc, PlatformError) else True
