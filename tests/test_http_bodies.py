"""Every POST route the runtime serves, read from its own /openapi.json, answers a missing or empty
body with a 400 that names the fields to send (caikit 0.28.3 answers 500), and reads JSON whatever
its charset parameter (caikit answers 415 to `application/json; charset=utf-8`)."""

import pytest
import requests

from conftest import TINY_SENTIMENT_ID


@pytest.fixture(scope="module")
def post_routes(runtime):
    spec = requests.get(f"{runtime.http_url}/openapi.json", timeout=30).json()
    routes = sorted(path for path, methods in spec["paths"].items() if "post" in methods)
    # The routes of every task and train RPC, present and future, are in the spec.
    assert "/api/v1/task/text-classification" in routes and "/api/v1/task/server-streaming-text-generation" in routes
    return routes


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/json"}], ids=["no-content-type", "json"])
@pytest.mark.parametrize("body", [b"", b"  \n"], ids=["empty", "whitespace"])
def test_an_empty_body_is_a_400_naming_the_fields(runtime, post_routes, headers, body):
    for route in post_routes:
        response = requests.post(runtime.http_url + route, data=body, headers=headers, timeout=30)
        assert response.status_code == 400, (route, response.status_code, response.text)
        message = response.json()["detail"]
        assert "body is empty" in message, (route, message)
        expected_field = "`model_id`" if route.startswith("/api/v1/task/") or route == "/management/models" else "`model_name`"
        assert expected_field in message, (route, message)


def test_json_with_a_charset_parameter_is_read(runtime):
    response = requests.post(
        f"{runtime.http_url}/api/v1/task/text-classification",
        data='{"model_id": "%s", "inputs": "a good film"}' % TINY_SENTIMENT_ID,
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert {result["label"] for result in response.json()["results"]} == {"positive", "negative"}


def test_json_without_a_content_type_is_read_as_json(runtime):
    response = requests.post(
        f"{runtime.http_url}/api/v1/task/text-classification",
        data=('{"model_id": "%s", "inputs": "a good film"}' % TINY_SENTIMENT_ID).encode(),
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("body", [b"null", b"[]", b"{not json", b'"text"'])
def test_a_body_that_is_no_json_object_is_a_4xx(runtime, body):
    response = requests.post(
        f"{runtime.http_url}/api/v1/task/text-classification",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code in (400, 422), response.text
