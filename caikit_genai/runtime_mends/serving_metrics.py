"""6. Serving metrics and backpressure: every answered predict request is timed into our latency
histogram (toolkit/serving/serving_metrics.py), and a request refused at a batcher's queue bound
(RESOURCE_EXHAUSTED over gRPC) is HTTP 503, as uvicorn's own concurrency limit answers,
instead of caikit's 429.
"""

import grpc

from ._common import _PATCHED


def serving_metrics_and_backpressure() -> None:
    from caikit.runtime import names  # pylint: disable=import-outside-toplevel
    from caikit.runtime.servicers.global_predict_servicer import (  # pylint: disable=import-outside-toplevel
        GlobalPredictServicer,
    )

    from ..toolkit.serving import serving_metrics  # pylint: disable=import-outside-toplevel

    names.STATUS_CODE_TO_HTTP[grpc.StatusCode.RESOURCE_EXHAUSTED] = 503
    if not getattr(GlobalPredictServicer.predict_model, _PATCHED, False):
        serving_metrics.time_predictions(GlobalPredictServicer)
        setattr(GlobalPredictServicer.predict_model, _PATCHED, True)
