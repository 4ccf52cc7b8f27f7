"""One exception hierarchy and one warning category for all of mlskip.

This module is a leaf: every stage (metadata, verifier, skipper, udf) may
import it. Messages name the file, column, model input or ONNX node concerned
and what the user can do about it.
"""

from __future__ import annotations


class MlskipError(Exception):
    """Base class of every error mlskip raises on purpose."""


class UnknownSuiteError(MlskipError, ValueError):
    """A TPC suite or table name that the generator does not know."""


class MetadataError(MlskipError):
    """Skipping metadata in a Parquet footer is missing, stale or corrupt."""


class InputDataError(MlskipError, ValueError):
    """Data handed to the writer cannot be summarised (bad column, type, pair)."""


class UnsupportedModelError(MlskipError):
    """A model contains an operator or shape the verifier cannot bound."""


class ModelInputError(MlskipError, ValueError):
    """A model was called or registered with inputs that do not fit it."""


class PredicateError(MlskipError, ValueError):
    """A predicate on a model's output is malformed."""


class SkippingFallbackWarning(UserWarning):
    """Skipping was not applied somewhere; that part is read in full (results stay correct)."""
