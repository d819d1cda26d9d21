"""Following up: progress, member lists and exports, briefings, exemptions, a unit's overview."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required, file_formats
from api.schemas import (BriefingSchema, ComplianceSchema, DailyProgressSchema, ExemptionSchema, ExtensionSchema,
                         MemberListArgs, MemberResultsSchema, MemberStateListSchema, OverviewSchema, PageArgs,
                         ProgressArgs, ProgressSchema)
from content import acknowledgements, followup, timeline
from handbook.tables import download

PREFIX = ""
blp = Blueprint("followup", __name__, description="Theo dõi tiến độ")

MEMBERS_200 = "format=json (default): one page of rows; format=csv or xlsx: the whole list as a file (streamed)"


@blp.route("/documents/<int:document_id>/progress", methods=["GET"])
@auth_required(light=True)
@blp.arguments(ProgressArgs, location="query")
@blp.response(200, ProgressSchema)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found: the document does not reach the caller's scope")
def progress(args, document_id):
    """Counts for a unit's subtree and each of its children. Costs O(units), not O(members)."""
    return followup.progress(current_user, document_id, args.get("org_unit"))


@blp.route("/documents/<int:document_id>/progress/daily", methods=["GET"])
@auth_required()
@blp.arguments(ProgressArgs, location="query")
@blp.response(200, DailyProgressSchema)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found: the document does not reach the caller's scope")
def progress_daily(args, document_id):
    """Acknowledgements over time for a unit's subtree: one point per local day, taken at the end of the
    day by the worker, and today's point live. Costs O(days) plus one progress read, not O(members)."""
    return timeline.progress_over_time(current_user, document_id, args.get("org_unit"))


@blp.route("/documents/<int:document_id>/members", methods=["GET"])
@auth_required()
@blp.arguments(MemberListArgs, location="query")
@blp.response(200, MemberStateListSchema, content_type="application/json", description=MEMBERS_200)
@file_formats(blp, MEMBERS_200)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found")
def members(args, document_id):
    """One row per audience member of the unit's subtree, pending first. CSV/XLSX exports are audited."""
    fmt = args.pop("format")
    if fmt == "json":
        items, next_cursor = followup.members(current_user, document_id, **args)
        return {"items": items, "next_cursor": next_cursor}
    args.pop("limit", None)
    args.pop("cursor", None)
    chunks, filename = followup.export(current_user, document_id, fmt=fmt, **args)
    return download(chunks, fmt, filename)


@blp.route("/documents/<int:document_id>/acknowledgements", methods=["POST"])
@auth_required()
@blp.arguments(BriefingSchema)
@blp.response(200, MemberResultsSchema)
@blp.alt_response(403, description="forbidden: not a secretary")
@blp.alt_response(404, description="not_found")
def record_briefing(args, document_id):
    """Record that members without the app were briefed at a branch meeting (per-member results)."""
    return {"results": acknowledgements.record_briefing(current_user, document_id, args["member_ids"],
                                                        args["held_on"], args.get("note"))}


@blp.route("/documents/<int:document_id>/acknowledgements/<int:member_id>", methods=["DELETE"])
@auth_required()
@blp.response(204)
@blp.alt_response(404, description="not_found: no briefing of that member")
def undo_briefing(document_id, member_id):
    """Undo a briefing recorded by mistake (an acknowledgement made in the app cannot be undone)."""
    acknowledgements.undo_briefing(current_user, document_id, member_id)


@blp.route("/documents/<int:document_id>/exemptions", methods=["POST"])
@auth_required()
@blp.arguments(ExemptionSchema)
@blp.response(200, MemberResultsSchema)
@blp.alt_response(403, description="forbidden: not a secretary")
@blp.alt_response(404, description="not_found")
def exempt(args, document_id):
    """Excuse members (illness, exempt from party activities): they leave the denominator."""
    return {"results": acknowledgements.exempt(current_user, document_id, args["member_ids"], args["reason"])}


@blp.route("/documents/<int:document_id>/exemptions/<int:member_id>", methods=["DELETE"])
@auth_required()
@blp.response(204)
@blp.alt_response(404, description="not_found: no exemption of that member")
def undo_exemption(document_id, member_id):
    """Undo an exemption."""
    acknowledgements.undo_exemption(current_user, document_id, member_id)


@blp.route("/documents/<int:document_id>/extensions", methods=["POST"])
@auth_required()
@blp.arguments(ExtensionSchema)
@blp.response(200, MemberResultsSchema)
@blp.alt_response(403, description="forbidden: not a secretary (or admin)")
@blp.alt_response(404, description="not_found: the document does not reach the caller's scope")
@blp.alt_response(409, description="ack_not_required / document_withdrawn")
def extend(args, document_id):
    """Give chosen members a later date for this document (illness, leave), with a reason: they are
    neither overdue nor reminded before it ends. Per-member results; audited."""
    return {"results": acknowledgements.extend(current_user, document_id, args["member_ids"], args["until"],
                                               args["reason"])}


@blp.route("/documents/<int:document_id>/extensions/<int:member_id>", methods=["DELETE"])
@auth_required()
@blp.response(204)
@blp.alt_response(403, description="forbidden: not a secretary (or admin)")
@blp.alt_response(404, description="not_found: no extension for that member in the caller's scope")
def undo_extension(document_id, member_id):
    """Take a deadline extension back."""
    acknowledgements.undo_extension(current_user, document_id, member_id)


@blp.route("/org-units/<int:org_unit_id>/overview", methods=["GET"])
@auth_required()
@blp.response(200, OverviewSchema)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
def overview(org_unit_id):
    """Every active document that needs acknowledging in the unit, with counts and days left; overdue first."""
    return followup.overview(current_user, org_unit_id)


@blp.route("/org-units/<int:org_unit_id>/compliance", methods=["GET"])
@auth_required()
@blp.arguments(PageArgs, location="query")
@blp.response(200, ComplianceSchema)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
def compliance(args, org_unit_id):
    """Closed directives (deadline passed), latest first: did the unit and each child unit reach every
    member by the deadline? Read from progress frozen when each deadline passed (`push run-due`)."""
    body, next_cursor = followup.compliance(current_user, org_unit_id, **args)
    return {**body, "next_cursor": next_cursor}
