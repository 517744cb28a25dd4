"""12. Start-up: caikit's `get_data_model` (called while the servers are built) iterates
`sys.modules` while the lazy loader's threads are already loading models, whose imports
(transformers imports lazily) add modules: "dictionary changed size during iteration" ends
the runtime at start (seen here once in about twenty starts serving five models, the
traceback ending in `import_util.get_data_model`). The lookup is retried.
"""


from ._common import log, replace_once


DATA_MODEL_LOOKUP_TRIES = 20


def data_model_lookup_survives_imports() -> None:
    """Every module that imported caikit's `get_data_model` by name gets the retrying one."""
    # pylint: disable=import-outside-toplevel
    from caikit.runtime.servicers import global_train_servicer
    from caikit.runtime.utils import import_util, servicer_util

    replace_once(import_util, "get_data_model", _retrying)
    for module in (global_train_servicer, servicer_util):
        module.get_data_model = import_util.get_data_model


def _retrying(get_data_model):
    def retried_get_data_model(*args, **kwargs):
        for attempt in range(DATA_MODEL_LOOKUP_TRIES):
            try:
                return get_data_model(*args, **kwargs)
            except RuntimeError as err:
                if "changed size during iteration" not in str(err) or attempt == DATA_MODEL_LOOKUP_TRIES - 1:
                    raise
                log.debug("data model lookup raced an import (%s): again", err)
        raise AssertionError("unreachable")

    return retried_get_data_model
