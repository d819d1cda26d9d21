"""Operations endpoints, request ids and metrics."""
from __future__ import annotations


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok"}


def test_request_id_is_echoed_or_generated(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abcDEF-123456"})
    assert given.headers["X-Request-ID"] == "abcDEF-123456"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] != "bad id with spaces"
    assert len(generated.headers["X-Request-ID"]) == 16


def test_metrics_count_requests(client):
    client.get("/healthz")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'handbook_http_requests_total{endpoint="/healthz",method="GET",status="200"}' in body
    assert "handbook_http_request_duration_seconds_bucket" in body
