"""5. `python -m caikit.runtime.train`, the batch entry point training Jobs run, exits 203 ("internal
error", no reason given) when a train call is refused before it starts (a bad model name, a
data file outside the training data dir) or a job ends ERRORED on bad data. Those are the
user's errors: exit 1, with the reason in the termination log, as caikit does for its own
argument errors. Anything else stays 203.
"""

import argparse
import functools
import os
import sys

from ._common import log, replace_once


# What a train call raises, or a job ends with, when the request or its data is at fault.
USER_ERROR_TYPES = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
USER_ERROR_STATUSES = ("INVALID_ARGUMENT", "ALREADY_EXISTS", "NOT_FOUND", "FAILED_PRECONDITION")


def is_user_error(error: BaseException) -> bool:
    status = getattr(error, "status_code", None)
    return isinstance(error, USER_ERROR_TYPES) or getattr(status, "name", None) in USER_ERROR_STATUSES


def batch_training_exit_codes() -> None:
    """Wrap the `train` that `python -m caikit.runtime.train` calls (it runs as `__main__`, so
    its globals are that module's), when that is the program running."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) != "caikit.runtime.train":
        return
    replace_once(main, "train", functools.partial(_with_user_errors, main))


def _with_user_errors(main, train):
    def user_error_exit(message: str):
        options, _ = _batch_options().parse_known_args()
        log.error("training refused: %s", message)
        main.exit_complete(main.USER_ERROR_EXIT_CODE, options.save_path, message, options.log_file, options.log_enabled)

    def train_with_user_errors(*args, **kwargs):
        try:
            future = train(*args, **kwargs)
        except Exception as error:  # pylint: disable=broad-except
            if not is_user_error(error):
                raise
            user_error_exit(f"{type(error).__name__}: {getattr(error, 'message', None) or error}")
        errors = list(future.get_info().errors or [])
        if errors and all(is_user_error(error) for error in errors):
            user_error_exit("; ".join(f"{type(error).__name__}: {error}" for error in errors))
        return future

    return train_with_user_errors


def _batch_options() -> argparse.ArgumentParser:
    """The few options of caikit's batch entry point the exit needs (its own parser is local)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--save-path", "-s", default=".")
    parser.add_argument(
        "--termination-log-file", "-f", dest="log_file", default=os.environ.get("TERMINATION_LOG_FILE", "/dev/termination-log")
    )
    parser.add_argument("--enable-termination-log", "-e", dest="log_enabled", default=os.environ.get("ENABLE_TERMINATION_LOG", True))
    return parser
