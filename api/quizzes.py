"""Quizzes (issue 17): authoring, attempts, results, contest rankings, acknowledgement rules."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required, file_formats
from api.followup import MEMBERS_200
from api.quiz_schemas import (AckRulesInSchema, AckRulesSchema, AttemptListSchema, AttemptSchema,
                              AttemptStartSchema, QuizMemberResultListSchema, MemberResultsArgs, MyAttemptsArgs,
                              QuizAdminSchema, QuizCreateSchema, QuizListSchema, QuizSchema, QuizSettingsSchema,
                              RankingArgs, RankingSchema, ResultsArgs, SeriesMembersArgs, SeriesMembersSchema,
                              SeriesStudySchema, SubmissionSchema, UnitResultsSchema)
from api.schemas import PageArgs
from content import quizzes, study
from handbook.tables import download

PREFIX = ""
blp = Blueprint("quizzes", __name__, description="Bài kiểm tra, thi tìm hiểu")


# --- authoring -------------------------------------------------------------------------------------

@blp.route("/admin/documents/<int:document_id>/quizzes", methods=["POST"])
@auth_required()
@blp.arguments(QuizCreateSchema)
@blp.response(201, QuizAdminSchema)
@blp.alt_response(404, description="not_found: not a document the caller manages")
@blp.alt_response(409, description="document_withdrawn")
def create_quiz(args, document_id):
    """Attach a quiz to a document: questions (single/multiple choice), pass mark, time limit, attempts,
    questions drawn per attempt, the acknowledgement gate, a contest (subtree and window)."""
    return quizzes.admin_view(quizzes.create_quiz(current_user, document_id, args))


@blp.route("/admin/quizzes/<int:quiz_id>", methods=["GET"])
@auth_required()
@blp.response(200, QuizAdminSchema)
@blp.alt_response(404, description="not_found: not a quiz the caller manages")
def get_quiz_admin(quiz_id):
    """The quiz with its bank and key (managers of its document)."""
    quiz, _ = quizzes.managed_quiz(current_user, quiz_id)
    return quizzes.admin_view(quiz)


@blp.route("/admin/quizzes/<int:quiz_id>", methods=["PATCH"])
@auth_required()
@blp.arguments(QuizSettingsSchema)
@blp.response(200, QuizAdminSchema)
@blp.alt_response(404, description="not_found")
@blp.alt_response(409, description="document_withdrawn")
def update_quiz(args, quiz_id):
    """Change settings; `questions` replaces the bank (attempts already started keep their questions)."""
    return quizzes.admin_view(quizzes.update_quiz(current_user, quiz_id, args))


@blp.route("/admin/documents/<int:document_id>/ack-rules", methods=["PUT"])
@auth_required()
@blp.arguments(AckRulesInSchema)
@blp.response(200, AckRulesSchema)
@blp.alt_response(404, description="not_found")
@blp.alt_response(409, description="document_withdrawn / ack_not_required")
def set_ack_rules(args, document_id):
    """The minimum reading time before an acknowledgement counts (after the first open)."""
    return quizzes.set_ack_rules(current_user, document_id, args["min_read_seconds"])


# --- members ---------------------------------------------------------------------------------------

@blp.route("/documents/<int:document_id>/quizzes", methods=["GET"])
@auth_required()
@blp.arguments(PageArgs, location="query")
@blp.response(200, QuizListSchema)
@blp.alt_response(404, description="not_found: no such document in the caller's audience")
def document_quizzes(args, document_id):
    """The document's quizzes the caller may take, with their attempts and best score, and the document's
    acknowledgement rules (minimum reading time, the quiz required)."""
    items, next_cursor, rules = quizzes.document_quizzes(current_user, document_id, **args)
    return {"items": items, "next_cursor": next_cursor, "ack_rules": rules}


@blp.route("/quizzes/<int:quiz_id>", methods=["GET"])
@auth_required()
@blp.response(200, QuizSchema)
@blp.alt_response(404, description="not_found")
def get_quiz(quiz_id):
    """The quiz's rules and the caller's standing (never its questions: start an attempt)."""
    quiz, _ = quizzes.readable_quiz(current_user, quiz_id)
    return quizzes.reader_view(quiz, current_user)


@blp.route("/quizzes/<int:quiz_id>/attempts", methods=["POST"])
@auth_required()
@blp.arguments(AttemptStartSchema)
@blp.response(201, AttemptSchema, description="A new attempt: questions (options shuffled) and its token")
@blp.alt_response(200, schema=AttemptSchema, success=True, description="The attempt still open, again")
@blp.alt_response(404, description="not_found")
@blp.alt_response(409, description="quiz_not_open / quiz_closed / no_attempts_left / quiz_has_no_questions")
def start_attempt(args, quiz_id):
    """Download an attempt to answer offline; the key stays on the server until submission."""
    answer, created = quizzes.start_attempt(current_user, quiz_id, client_started_at=args.get("started_at"),
                                            platform=args.get("platform"), device=args.get("device"))
    return answer, 201 if created else 200


@blp.route("/quiz-attempts/<int:attempt_id>", methods=["GET"])
@auth_required()
@blp.response(200, AttemptSchema)
@blp.alt_response(404, description="not_found: not the caller's attempt nor one in their follow-up scope")
def get_attempt(attempt_id):
    """An attempt: the caller's own, or (evidence) a member's within the caller's follow-up scope."""
    return quizzes.view_attempt(current_user, attempt_id)


@blp.route("/quiz-attempts/<int:attempt_id>/submission", methods=["POST"])
@auth_required()
@blp.arguments(SubmissionSchema)
@blp.response(200, AttemptSchema)
@blp.alt_response(403, description="attempt_token_mismatch")
@blp.alt_response(404, description="not_found: not the caller's attempt")
@blp.alt_response(409, description="attempt_late (with due_at): past the time limit and its margin")
def submit_attempt(args, attempt_id):
    """Grade the answers (once: submitting again answers the stored result)."""
    return quizzes.submit_attempt(current_user, attempt_id, args["token"], args["answers"],
                                  client_submitted_at=args.get("submitted_at"))


@blp.route("/me/quiz-attempts", methods=["GET"])
@auth_required()
@blp.arguments(MyAttemptsArgs, location="query")
@blp.response(200, AttemptListSchema)
def my_attempts(args):
    """The caller's attempts, newest first."""
    items, next_cursor = quizzes.my_attempts(current_user, **args)
    return {"items": items, "next_cursor": next_cursor}


# --- results ---------------------------------------------------------------------------------------

@blp.route("/quizzes/<int:quiz_id>/results", methods=["GET"])
@auth_required()
@blp.arguments(ResultsArgs, location="query")
@blp.response(200, UnitResultsSchema)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found")
def results(args, quiz_id):
    """Took, passed, average best score for a unit's subtree and each child; the hardest questions."""
    return quizzes.unit_results(current_user, quiz_id, args.get("org_unit"))


@blp.route("/quizzes/<int:quiz_id>/members", methods=["GET"])
@auth_required()
@blp.arguments(MemberResultsArgs, location="query")
@blp.response(200, QuizMemberResultListSchema, content_type="application/json", description=MEMBERS_200)
@file_formats(blp, MEMBERS_200)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found")
def member_results(args, quiz_id):
    """One row per audience member of the subtree: attempts, best score, passed. Exports are audited."""
    fmt = args.pop("format")
    if fmt == "json":
        items, next_cursor = quizzes.member_results(current_user, quiz_id, **args)
        return {"items": items, "next_cursor": next_cursor}
    args.pop("limit", None)
    args.pop("cursor", None)
    chunks, filename = quizzes.export_results(current_user, quiz_id, fmt=fmt, **args)
    return download(chunks, fmt, filename)


@blp.route("/quizzes/<int:quiz_id>/ranking", methods=["GET"])
@auth_required()
@blp.arguments(RankingArgs, location="query")
@blp.response(200, RankingSchema)
@blp.alt_response(403, description="forbidden: not committee, publisher or admin over the unit")
@blp.alt_response(404, description="not_found: no such contest reaching the caller's scope")
def ranking(args, quiz_id):
    """A contest's ranking: members by best score, ties by time taken; or child units by average."""
    body, next_cursor = quizzes.ranking(current_user, quiz_id, **args)
    return {**body, "next_cursor": next_cursor}


# --- study series ----------------------------------------------------------------------------------

@blp.route("/series/<int:series_id>/study", methods=["GET"])
@auth_required()
@blp.response(200, SeriesStudySchema)
@blp.alt_response(404, description="not_found: no lesson of this series is in the caller's audience")
def series_study(series_id):
    """The caller's progress through the series: each lesson's state and its quizzes' best scores."""
    return study.my_series_study(current_user, series_id)


@blp.route("/series/<int:series_id>/members", methods=["GET"])
@auth_required()
@blp.arguments(SeriesMembersArgs, location="query")
@blp.response(200, SeriesMembersSchema)
@blp.alt_response(403, description="forbidden: the unit is outside the caller's scope")
@blp.alt_response(404, description="not_found: no lesson of this series reaches the unit")
def series_members(args, series_id):
    """Each member's progress through the series' lessons and quizzes (follow-up roles)."""
    body, next_cursor = study.series_members(current_user, series_id, **args)
    return {**body, "next_cursor": next_cursor}
