"""Branch meetings, questions on documents and adoption (../shared/API.md, "Meetings, questions, adoption")."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required, file_formats
from api.meeting_schemas import (AdminQuestionArgs, AdoptionSchema, AnswerInSchema, AttendanceSchema, CancelSchema,
                                 CheckInCodeSchema, CheckInResultSchema, CheckInSchema, CloseResultSchema,
                                 FormatArgs, MeetingCreateSchema, MeetingListSchema, MeetingPatchSchema,
                                 MeetingSchema, MeetingStatsSchema, MyMeetingsArgs, PublicAnswerListSchema,
                                 QuestionInSchema, QuestionListSchema, QuestionSchema, RsvpResultSchema, RsvpSchema,
                                 StatsArgs, UnitMeetingsArgs)
from api.schemas import PageArgs
from content import adoption, meetings, questions
from handbook.tables import download

PREFIX = ""
blp = Blueprint("meetings", __name__, description="Sinh hoạt chi bộ, góp ý văn bản, mức độ sử dụng")

NOT_VISIBLE = "not_found: no such meeting, or the caller is neither invited nor following its unit"


# --- meetings ----------------------------------------------------------------------------------------

@blp.route("/org-units/<int:org_unit_id>/meetings", methods=["POST"])
@auth_required()
@blp.arguments(MeetingCreateSchema)
@blp.response(201, MeetingSchema)
@blp.alt_response(403, description="forbidden: not a secretary over this member-holding unit (nor a committee "
                                   "member over this grassroots or sub unit, for a thematic meeting)")
@blp.alt_response(404, description="not_found: no such unit")
def schedule(args, org_unit_id):
    """Schedule a meeting; the invited get an inbox item and a push now, and a reminder
    MEETING_REMINDER_HOURS before it starts (quiet hours hold both)."""
    meeting = meetings.schedule(current_user, org_unit_id, args)
    return meetings.view(current_user, meeting)


@blp.route("/org-units/<int:org_unit_id>/meetings", methods=["GET"])
@auth_required()
@blp.arguments(UnitMeetingsArgs, location="query")
@blp.response(200, MeetingListSchema)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found: no such unit")
def unit_meetings(args, org_unit_id):
    """The meetings of the unit's subtree, latest first."""
    return meetings.for_unit(current_user, org_unit_id, since=args.get("from_"), until=args.get("to"),
                             limit=args["limit"], cursor=args.get("cursor"))


@blp.route("/org-units/<int:org_unit_id>/meetings/stats", methods=["GET"])
@auth_required()
@blp.arguments(StatsArgs, location="query")
@blp.response(200, MeetingStatsSchema, content_type="application/json")
@file_formats(blp)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found: no such unit")
def stats(args, org_unit_id):
    """The month's meetings per unit, rolled up the tree: branches, branches that held their regular
    meeting, meetings held, attendance rate; overdue branches from day 25."""
    # A file lists every overdue branch (the page names the first OVERDUE_LISTED and sends there).
    figures = meetings.stats(current_user, org_unit_id, args["month"],
                             **({} if args["format"] == "json" else {"overdue_limit": None}))
    if args["format"] == "json":
        return figures
    code = figures["org_unit"]["code"]
    fmt = args["format"]
    return download(meetings.stats_export(figures, fmt), fmt, f"sinh-hoat-{code}-{args['month']}.{fmt}")


@blp.route("/me/meetings", methods=["GET"])
@auth_required()
@blp.arguments(MyMeetingsArgs, location="query")
@blp.response(200, MeetingListSchema)
def my_meetings(args):
    """The caller's meetings: upcoming (soonest first) or past (latest first)."""
    return meetings.mine(current_user, upcoming=args["upcoming"], limit=args["limit"], cursor=args.get("cursor"))


@blp.route("/meetings/<int:meeting_id>", methods=["GET"])
@auth_required()
@blp.response(200, MeetingSchema)
@blp.alt_response(404, description=NOT_VISIBLE)
def get_meeting(meeting_id):
    """One meeting, with its counts and the caller's own answer and attendance."""
    return meetings.get(current_user, meeting_id)


@blp.route("/meetings/<int:meeting_id>", methods=["PATCH"])
@auth_required()
@blp.arguments(MeetingPatchSchema)
@blp.response(200, MeetingSchema)
@blp.alt_response(403, description="forbidden: the caller sees the meeting but does not run it")
@blp.alt_response(404, description=NOT_VISIBLE)
@blp.alt_response(409, description="meeting_closed / meeting_cancelled")
def change_meeting(args, meeting_id):
    """Change the time, place, link, agenda or note; the invited are told of a new time or place."""
    return meetings.view(current_user, meetings.change(current_user, meeting_id, args))


@blp.route("/meetings/<int:meeting_id>/cancel", methods=["POST"])
@auth_required()
@blp.arguments(CancelSchema)
@blp.response(200, MeetingSchema)
@blp.alt_response(403, description="forbidden: the caller sees the meeting but does not run it")
@blp.alt_response(404, description=NOT_VISIBLE)
@blp.alt_response(409, description="meeting_closed")
def cancel_meeting(args, meeting_id):
    """Cancel the meeting; the invited are told. Cancelling again changes nothing."""
    return meetings.view(current_user, meetings.cancel(current_user, meeting_id, args["reason"]))


@blp.route("/meetings/<int:meeting_id>/rsvp", methods=["PUT"])
@auth_required()
@blp.arguments(RsvpSchema)
@blp.response(200, RsvpResultSchema)
@blp.alt_response(403, description="forbidden: the caller follows the unit but is not invited")
@blp.alt_response(404, description=NOT_VISIBLE)
@blp.alt_response(409, description="meeting_started / meeting_closed / meeting_cancelled")
def rsvp(args, meeting_id):
    """Say whether you will attend (absent needs a reason), until the meeting starts."""
    return meetings.rsvp(current_user, meeting_id, args["response"], args.get("reason"))


@blp.route("/meetings/<int:meeting_id>/check-in-code", methods=["GET"])
@auth_required()
@blp.response(200, CheckInCodeSchema)
@blp.alt_response(403, description="forbidden: the caller sees the meeting but does not run it")
@blp.alt_response(404, description=NOT_VISIBLE)
@blp.alt_response(409, description="meeting_not_open: before the check-in opens or after the meeting ends")
def check_in_code(meeting_id):
    """The 6-digit code to show at the meeting (and its QR code); it changes every 5 minutes and each
    code is accepted for 10."""
    return meetings.check_in_code(current_user, meeting_id)


@blp.route("/meetings/<int:meeting_id>/check-in", methods=["POST"])
@auth_required()
@blp.arguments(CheckInSchema)
@blp.response(200, CheckInResultSchema)
@blp.alt_response(403, description="forbidden: the caller follows the unit but is not invited")
@blp.alt_response(404, description=NOT_VISIBLE)
@blp.alt_response(409, description="meeting_not_open / meeting_closed / meeting_cancelled")
@blp.alt_response(422, description="invalid_code (counted against CHECK_IN_LIMIT_PER_MEMBER and _PER_MEETING)")
@blp.alt_response(429, description="rate_limited: too many wrong codes (Retry-After)")
def check_in(args, meeting_id):
    """Check in with the code shown at the meeting."""
    return meetings.check_in(current_user, meeting_id, args["code"])


@blp.route("/meetings/<int:meeting_id>/attendance", methods=["PUT"])
@auth_required()
@blp.arguments(AttendanceSchema)
@blp.response(200, MeetingSchema)
@blp.alt_response(403, description="forbidden: the caller sees the meeting but does not run it")
@blp.alt_response(404, description=NOT_VISIBLE)
@blp.alt_response(409, description="meeting_not_open / meeting_closed / meeting_cancelled")
def attendance(args, meeting_id):
    """Mark members present or absent (excused or not) by hand; merged with check-ins."""
    return meetings.mark_attendance(current_user, meeting_id, args["present"], args["absent"])


@blp.route("/meetings/<int:meeting_id>/close", methods=["POST"])
@auth_required()
@blp.response(200, CloseResultSchema)
@blp.alt_response(403, description="forbidden: the caller sees the meeting but does not run it")
@blp.alt_response(404, description=NOT_VISIBLE)
@blp.alt_response(409, description="meeting_not_open / meeting_cancelled")
def close(meeting_id):
    """Fix the attendance and record the present members who had not acknowledged an agenda document
    as briefed on it (method meeting), in one transaction. Closing again changes nothing."""
    return meetings.close(current_user, meeting_id)


# --- questions ---------------------------------------------------------------------------------------

@blp.route("/documents/<int:document_id>/questions", methods=["POST"])
@auth_required()
@blp.arguments(QuestionInSchema)
@blp.response(201, QuestionSchema)
@blp.alt_response(404, description="not_found: no such document in the caller's audience")
@blp.alt_response(429, description="question_limit: QUESTIONS_PER_DAY questions in the last 24 hours")
def ask(args, document_id):
    """Send a question or feedback on a document to its publishers."""
    return questions.ask(current_user, document_id, args["text"])


@blp.route("/documents/<int:document_id>/questions", methods=["GET"])
@auth_required()
@blp.arguments(PageArgs, location="query")
@blp.response(200, PublicAnswerListSchema)
@blp.alt_response(404, description="not_found: no such document in the caller's audience")
def public_answers(args, document_id):
    """The answers published under the document as a Q&A, without askers' names."""
    return questions.public(current_user, document_id, limit=args["limit"], cursor=args.get("cursor"))


@blp.route("/me/questions", methods=["GET"])
@auth_required()
@blp.arguments(PageArgs, location="query")
@blp.response(200, QuestionListSchema)
def my_questions(args):
    """The caller's own questions and their answers, newest first."""
    return questions.mine(current_user, limit=args["limit"], cursor=args.get("cursor"))


@blp.route("/admin/questions", methods=["GET"])
@auth_required()
@blp.arguments(AdminQuestionArgs, location="query")
@blp.response(200, QuestionListSchema)
@blp.alt_response(403, description="forbidden: not a publisher")
def admin_questions(args):
    """Questions on the documents the caller manages, newest first."""
    return questions.for_publishers(current_user, document_id=args.get("document"), status=args.get("status"),
                                    limit=args["limit"], cursor=args.get("cursor"))


@blp.route("/admin/questions/<int:question_id>/answer", methods=["POST"])
@auth_required()
@blp.arguments(AnswerInSchema)
@blp.response(200, QuestionSchema)
@blp.alt_response(404, description="not_found: no such question on a document the caller manages")
def answer(args, question_id):
    """Answer (or correct the answer); the asker gets an inbox item and a push."""
    return questions.answer(current_user, question_id, args["text"], args["public"])


# --- adoption ----------------------------------------------------------------------------------------

@blp.route("/org-units/<int:org_unit_id>/adoption", methods=["GET"])
@auth_required()
@blp.arguments(FormatArgs, location="query")
@blp.response(200, AdoptionSchema, content_type="application/json")
@file_formats(blp)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found: no such unit")
def unit_adoption(args, org_unit_id):
    """Members, those who ever signed in, with a device, active in 30 days, per child unit (lowest share
    with a device first). Rolled up periodically: `as_of` says when."""
    figures = adoption.adoption(current_user, org_unit_id)
    if args["format"] == "json":
        return figures
    fmt = args["format"]
    return download(adoption.export(figures, fmt), fmt, f"su-dung-{figures['org_unit']['code']}.{fmt}")
