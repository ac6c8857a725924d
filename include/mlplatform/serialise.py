"""Model (de)serialisation for the registry: one format and one type check for every model class."""

from __future__ import annotations

import io
from typing import Any


class JoblibSerialisable:
    """``to_bytes`` / ``from_bytes`` with joblib (compressed); loading checks the class.

    Why the check: the registry loads bytes chosen by a version id; a model of another kind (a tabular
    model under a forecast spec, say) must fail loudly at load time, not mis-predict later.
    """

    def to_bytes(self) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=3)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Any:
        import joblib

        model = joblib.load(io.BytesIO(data))
        if not isinstance(model, cls):
            raise TypeError(f"expected a serialised {cls.__name__}, got {type(model).__name__}")
        return model
