"""7. gRPC UNAVAILABLE (a backend such as a TGIS server is down or did not answer) becomes HTTP 501
"Not Implemented" in caikit's status table; it is 503 "Service Unavailable", which clients
and load balancers know to retry.
"""

import grpc


def unavailable_is_http_503() -> None:
    """caikit's HTTP server reads this table (the same dict object) on every error."""
    from caikit.runtime import names  # pylint: disable=import-outside-toplevel

    names.STATUS_CODE_TO_HTTP[grpc.StatusCode.UNAVAILABLE] = 503
    names.HTTP_TO_STATUS_CODE[503] = grpc.StatusCode.UNAVAILABLE
