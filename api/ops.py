"""Operations endpoints: /healthz, /readyz, /metrics (outside /api/v1, but in the OpenAPI document)."""
from __future__ import annotations

from sqlalchemy import text

from api.common import Blueprint
from api.schemas import StatusSchema
from handbook.extensions import db
from handbook.observability import metrics_response

blp = Blueprint("ops", __name__, description="Vận hành: tình trạng dịch vụ và số liệu")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, StatusSchema)
def healthz():
    """The process is alive (no dependency is checked)."""
    return {"status": "ok", "checks": {}}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, StatusSchema)
@blp.alt_response(503, description="service_unavailable: the database is unreachable")
def readyz():
    """Ready to serve: the database answers."""
    db.session.execute(text("SELECT 1"))
    db.session.rollback()
    return {"status": "ok", "checks": {"database": "ok"}}


@blp.route("/metrics", methods=["GET"])
@blp.doc(responses={"200": {"description": "Prometheus text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics():
    """Prometheus metrics."""
    return metrics_response()
