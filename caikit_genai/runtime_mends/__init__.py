"""Mends of caikit 0.28.3's runtime (and one of torch/transformers) where no configuration key or
extension point reaches.

`python -m caikit.runtime` imports this library before it builds its servers, so `caikit_genai`
applies them on import; each replaces one function or method by a wrapper that keeps caikit's
behaviour for good requests. registry.py lists them (the symbol each replaces, why, its upstream
report, the versions it was checked on, the order), and `apply()` refuses an untested caikit
before patching anything. Each mend's file says what caikit does wrong and what it does instead.
docs/caikit-mends.md is rendered from the registry: `python -m caikit_genai.runtime_mends --render`.
"""

from ._common import in_lazy_sync
from .abandoned_streams import STREAM_PUT_CHECK_SECONDS, abandonable_async_wrap_iter
from .batch_exit_codes import USER_ERROR_STATUSES, USER_ERROR_TYPES, is_user_error
from .data_model_lookup import DATA_MODEL_LOOKUP_TRIES
from .failed_loads import FIRST_RETRY_SECONDS, LAST_RETRY_SECONDS, LOAD_FAILURES, FailureRememberingLoader, LoadFailure, LoadFailures, dir_fingerprint, retry_delay
from .model_management import DEPLOYED_MARKER, management_enabled
from .predict_checks import check_model_task
from .registry import HOOKS, MENDS, PINS, UNTESTED_VERSIONS_SETTING, UntestedVersionError, apply, check_versions

__all__ = [
    "DATA_MODEL_LOOKUP_TRIES",
    "DEPLOYED_MARKER",
    "FIRST_RETRY_SECONDS",
    "HOOKS",
    "LAST_RETRY_SECONDS",
    "LOAD_FAILURES",
    "MENDS",
    "PINS",
    "STREAM_PUT_CHECK_SECONDS",
    "UNTESTED_VERSIONS_SETTING",
    "USER_ERROR_STATUSES",
    "USER_ERROR_TYPES",
    "FailureRememberingLoader",
    "LoadFailure",
    "LoadFailures",
    "UntestedVersionError",
    "abandonable_async_wrap_iter",
    "apply",
    "check_model_task",
    "check_versions",
    "dir_fingerprint",
    "in_lazy_sync",
    "is_user_error",
    "management_enabled",
    "retry_delay",
]
