"""Study series (chuyên đề): members follow their progress; publishers create series."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required
from api.schemas import SeriesAdminSchema, SeriesCreateSchema, SeriesDetailSchema, SeriesListSchema
from content import documents, feed

PREFIX = ""
blp = Blueprint("series", __name__, description="Chuyên đề học tập")


@blp.route("/series", methods=["GET"])
@auth_required()
@blp.etag
@blp.response(200, SeriesListSchema)
def list_series():
    """Series with at least one lesson the caller can read, with their progress."""
    return {"items": feed.series_list(current_user)}


@blp.route("/series/<int:series_id>", methods=["GET"])
@auth_required()
@blp.etag
@blp.response(200, SeriesDetailSchema)
@blp.alt_response(404, description="not_found: no lesson of this series is in the caller's audience")
def get_series(series_id):
    """The lessons in order, each with the caller's state, and the caller's progress."""
    return feed.series_detail(current_user, series_id)


@blp.route("/admin/series", methods=["POST"])
@auth_required()
@blp.arguments(SeriesCreateSchema)
@blp.response(201, SeriesAdminSchema)
@blp.alt_response(403, description="forbidden / audience_out_of_scope: not a publisher of that unit")
def create_series(args):
    """Create a study series; lessons are `study` documents that name it in `series_id`."""
    series = documents.create_series(current_user, args)
    return {"id": series.id, "title": series.title, "summary": series.summary,
            "owner_unit": series.owner_unit.brief(), "created_at": series.created_at}
