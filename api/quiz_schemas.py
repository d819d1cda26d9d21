"""Marshmallow schemas of the quiz endpoints (issue 17). Unknown fields are rejected (422)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas import (CURSOR, LIMIT, PLATFORMS, MemberBriefSchema, PageArgs, StrictSchema, UnitBriefSchema,
                         UtcDateTime, aware_datetime, id_field)

QUESTION_KINDS = ["single", "multiple"]
ATTEMPT_STATUSES = ["started", "submitted", "late"]


# --- authoring -------------------------------------------------------------------------------------

class OptionInSchema(StrictSchema):
    text = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))
    correct = ma.fields.Boolean(load_default=False)


class QuizQuestionInSchema(StrictSchema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(QUESTION_KINDS))
    text = ma.fields.String(required=True, validate=validate.Length(min=1, max=5000))
    options = ma.fields.List(ma.fields.Nested(OptionInSchema), required=True, validate=validate.Length(min=2, max=10))
    points = ma.fields.Integer(strict=True, validate=validate.Range(1, 100), metadata={"description": "Weight (default 1)"})


class ContestInSchema(StrictSchema):
    org_unit = id_field(required=True, strict=True, metadata={"description": "The subtree the contest is open to"})
    opens_at = aware_datetime(allow_none=True)
    closes_at = aware_datetime(allow_none=True, metadata={"description": "No attempt starts after it; attempts "
                                                                         "started before may be submitted later"})


class QuizSettingsSchema(StrictSchema):
    title = ma.fields.String(validate=validate.Length(min=1, max=500))
    pass_mark = ma.fields.Integer(strict=True, validate=validate.Range(0, 100), metadata={"description": "Percent"})
    time_limit_seconds = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(10, 86400))
    max_attempts = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, 100))
    draw_count = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, 500), metadata={
        "description": "Questions drawn at random from the bank per attempt (empty: all)"})
    required_for_ack = ma.fields.Boolean(metadata={
        "description": "The document's acknowledgement needs a pass on its current version"})
    reveal_answers = ma.fields.Boolean(metadata={"description": "Show the key after submission (default true)"})
    contest = ma.fields.Nested(ContestInSchema, allow_none=True)
    questions = ma.fields.List(ma.fields.Nested(QuizQuestionInSchema), validate=validate.Length(min=1, max=500),
                               metadata={"description": "The bank (replaces the previous one on PATCH)"})


class QuizCreateSchema(QuizSettingsSchema):
    title = ma.fields.String(required=True, validate=validate.Length(min=1, max=500))
    questions = ma.fields.List(ma.fields.Nested(QuizQuestionInSchema), required=True,
                               validate=validate.Length(min=1, max=500))


class AckRulesInSchema(StrictSchema):
    min_read_seconds = ma.fields.Integer(required=True, strict=True, allow_none=True,
                                         validate=validate.Range(0, 86400),
                                         metadata={"description": "Seconds after the first open (0 or null: none)"})


class AckRulesSchema(StrictSchema):
    document_id = ma.fields.Integer()
    min_read_seconds = ma.fields.Integer(allow_none=True)
    quiz_id = ma.fields.Integer(allow_none=True, metadata={"description": "The quiz required to acknowledge"})


class ContestSchema(StrictSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    opens_at = UtcDateTime(allow_none=True)
    closes_at = UtcDateTime(allow_none=True)


class OptionAdminSchema(StrictSchema):
    text = ma.fields.String()
    correct = ma.fields.Boolean()


class QuestionAdminSchema(StrictSchema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": QUESTION_KINDS})
    text = ma.fields.String()
    points = ma.fields.Integer()
    options = ma.fields.List(ma.fields.Nested(OptionAdminSchema))


class _QuizBaseSchema(StrictSchema):
    id = ma.fields.Integer()
    document_id = ma.fields.Integer()
    title = ma.fields.String()
    pass_mark = ma.fields.Integer()
    time_limit_seconds = ma.fields.Integer(allow_none=True)
    max_attempts = ma.fields.Integer(allow_none=True)
    draw_count = ma.fields.Integer(allow_none=True)
    required_for_ack = ma.fields.Boolean()
    contest = ma.fields.Nested(ContestSchema, allow_none=True)


class QuizAdminSchema(_QuizBaseSchema):
    reveal_answers = ma.fields.Boolean()
    bank_size = ma.fields.Integer()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    questions = ma.fields.List(ma.fields.Nested(QuestionAdminSchema))


# --- reading and attempts --------------------------------------------------------------------------

class MyQuizSchema(StrictSchema):
    attempts = ma.fields.Integer(metadata={"description": "Attempts started"})
    attempts_left = ma.fields.Integer(allow_none=True)
    best_score = ma.fields.Float(allow_none=True, metadata={"description": "Percent"})
    passed = ma.fields.Boolean()
    open_attempt_id = ma.fields.Integer(allow_none=True, metadata={"description": "An attempt still open"})


class QuizSchema(_QuizBaseSchema):
    questions_per_attempt = ma.fields.Integer()
    my = ma.fields.Nested(MyQuizSchema)


class QuizListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(QuizSchema))
    next_cursor = ma.fields.String(allow_none=True)
    ack_rules = ma.fields.Nested(AckRulesSchema)


class AttemptStartSchema(StrictSchema):
    started_at = aware_datetime(allow_none=True, metadata={"description": "Client time (kept as evidence)"})
    platform = ma.fields.String(validate=validate.OneOf(PLATFORMS))
    device = ma.fields.String(validate=validate.Length(max=128))


class AttemptOptionSchema(StrictSchema):
    key = ma.fields.String(metadata={"description": "Random per attempt"})
    text = ma.fields.String()
    correct = ma.fields.Boolean(metadata={"description": "Only after submission, when the quiz reveals answers"})


class AttemptQuestionSchema(StrictSchema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": QUESTION_KINDS})
    text = ma.fields.String()
    points = ma.fields.Integer()
    options = ma.fields.List(ma.fields.Nested(AttemptOptionSchema), metadata={"description": "Shuffled per attempt"})
    chosen = ma.fields.List(ma.fields.String(), metadata={"description": "After submission: the keys chosen"})
    score = ma.fields.Float(metadata={"description": "After submission: the question's credit in percent"})


class AttemptSchema(StrictSchema):
    id = ma.fields.Integer()
    quiz_id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    number = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": ATTEMPT_STATUSES})
    token = ma.fields.String(metadata={"description": "Only when started: send it back with the answers"})
    document_version = ma.fields.Integer()
    started_at = UtcDateTime()
    due_at = UtcDateTime(allow_none=True, metadata={"description": "Start + time limit"})
    submit_by = UtcDateTime(allow_none=True, metadata={"description": "due_at + the grace margin"})
    submitted_at = UtcDateTime(allow_none=True)
    client_submitted_at = UtcDateTime(allow_none=True)
    platform = ma.fields.String(allow_none=True)
    device = ma.fields.String(allow_none=True)
    score = ma.fields.Float(allow_none=True, metadata={"description": "Percent, after submission"})
    passed = ma.fields.Boolean(allow_none=True)
    duration_seconds = ma.fields.Integer(allow_none=True)
    questions = ma.fields.List(ma.fields.Nested(AttemptQuestionSchema))


class QuizAnswerInSchema(StrictSchema):
    question_id = id_field(required=True, strict=True)
    options = ma.fields.List(ma.fields.String(validate=validate.Length(min=1, max=16)), required=True,
                             validate=validate.Length(max=10), metadata={"description": "Option keys chosen"})


class SubmissionSchema(StrictSchema):
    token = ma.fields.String(required=True, validate=validate.Length(min=1, max=128))
    answers = ma.fields.List(ma.fields.Nested(QuizAnswerInSchema), required=True, validate=validate.Length(max=500))
    submitted_at = aware_datetime(allow_none=True, metadata={
        "description": "Client time when answered (offline); clamped to [start, arrival]"})


class AttemptBriefSchema(StrictSchema):
    id = ma.fields.Integer()
    quiz_id = ma.fields.Integer()
    number = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": ATTEMPT_STATUSES})
    document_version = ma.fields.Integer()
    started_at = UtcDateTime()
    submitted_at = UtcDateTime(allow_none=True)
    score = ma.fields.Float(allow_none=True)
    passed = ma.fields.Boolean(allow_none=True)
    duration_seconds = ma.fields.Integer(allow_none=True)


class AttemptListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(AttemptBriefSchema))
    next_cursor = ma.fields.String(allow_none=True)


class MyAttemptsArgs(PageArgs):
    quiz = id_field(metadata={"description": "Only this quiz's attempts"})


# --- results ---------------------------------------------------------------------------------------

class ResultsArgs(StrictSchema):
    org_unit = id_field(metadata={"description": "Unit to report on (default: the caller's scope root)"})


class QuizBriefSchema(StrictSchema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    pass_mark = ma.fields.Integer()


class ResultFiguresSchema(StrictSchema):
    members = ma.fields.Integer(metadata={"description": "Audience members of the document in the subtree"})
    took = ma.fields.Integer(metadata={"description": "Members with a submitted attempt"})
    passed = ma.fields.Integer()
    average_score = ma.fields.Float(allow_none=True, metadata={"description": "Mean best score (percent)"})
    average_duration_seconds = ma.fields.Float(allow_none=True)


class ChildResultsSchema(ResultFiguresSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)


class HardQuestionSchema(StrictSchema):
    question_id = ma.fields.Integer()
    text = ma.fields.String()
    answered = ma.fields.Integer(metadata={"description": "Times in a submitted attempt"})
    correct = ma.fields.Integer(metadata={"description": "Times fully right"})
    correct_rate = ma.fields.Float()


class UnitResultsSchema(ResultFiguresSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    quiz = ma.fields.Nested(QuizBriefSchema)
    children = ma.fields.List(ma.fields.Nested(ChildResultsSchema))
    hardest_questions = ma.fields.List(ma.fields.Nested(HardQuestionSchema))


class MemberResultsArgs(StrictSchema):
    org_unit = id_field()
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "xlsx"]))
    limit = LIMIT
    cursor = CURSOR


class QuizMemberResultSchema(StrictSchema):
    member = ma.fields.Nested(MemberBriefSchema)
    attempts = ma.fields.Integer(metadata={"description": "Submitted attempts"})
    best_score = ma.fields.Float(allow_none=True)
    best_duration_seconds = ma.fields.Integer(allow_none=True)
    passed = ma.fields.Boolean()
    last_submitted_at = UtcDateTime(allow_none=True)


class QuizMemberResultListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(QuizMemberResultSchema))
    next_cursor = ma.fields.String(allow_none=True)


class RankingArgs(PageArgs):
    org_unit = id_field(metadata={"description": "Default: the contest's unit (or the caller's scope root)"})
    by = ma.fields.String(load_default="members", validate=validate.OneOf(["members", "units"]))


class RankingItemSchema(StrictSchema):
    rank = ma.fields.Integer()
    member = ma.fields.Nested(MemberBriefSchema)
    org_unit = ma.fields.Nested(UnitBriefSchema)
    best_score = ma.fields.Float(allow_none=True)
    best_duration_seconds = ma.fields.Integer(allow_none=True)
    passed = ma.fields.Boolean(allow_none=True)
    attempts = ma.fields.Integer()
    took = ma.fields.Integer()
    passed_members = ma.fields.Integer()
    average_score = ma.fields.Float(allow_none=True)
    average_duration_seconds = ma.fields.Float(allow_none=True)


class RankingSchema(StrictSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    by = ma.fields.String(metadata={"enum": ["members", "units"]})
    items = ma.fields.List(ma.fields.Nested(RankingItemSchema))
    next_cursor = ma.fields.String(allow_none=True)


# --- study series: lessons and quizzes -------------------------------------------------------------

class LessonQuizSchema(StrictSchema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    pass_mark = ma.fields.Integer()
    best_score = ma.fields.Float(allow_none=True, metadata={"description": "The caller's (GET …/study only)"})
    passed = ma.fields.Boolean(metadata={"description": "The caller's (GET …/study only)"})


class LessonSchema(StrictSchema):
    id = ma.fields.Integer()
    lesson_no = ma.fields.Integer(allow_none=True)
    title = ma.fields.String()
    requires_ack = ma.fields.Boolean()
    state = ma.fields.String(metadata={"enum": ["new", "opened", "done"], "description": "The caller's"})
    quizzes = ma.fields.List(ma.fields.Nested(LessonQuizSchema))


class StudyProgressSchema(StrictSchema):
    lessons = ma.fields.Integer()
    completed = ma.fields.Integer()
    quizzes = ma.fields.Integer()
    quizzes_passed = ma.fields.Integer()


class SeriesStudySchema(StrictSchema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    lessons = ma.fields.List(ma.fields.Nested(LessonSchema))
    progress = ma.fields.Nested(StudyProgressSchema)


class SeriesMembersArgs(PageArgs):
    org_unit = id_field(metadata={"description": "Unit to report on (default: the caller's scope root)"})


class MemberLessonSchema(StrictSchema):
    document_id = ma.fields.Integer()
    state = ma.fields.String(metadata={"enum": ["new", "opened", "done"]})


class MemberQuizSchema(StrictSchema):
    quiz_id = ma.fields.Integer()
    attempts = ma.fields.Integer()
    best_score = ma.fields.Float(allow_none=True)
    passed = ma.fields.Boolean()


class SeriesMemberSchema(StrictSchema):
    member = ma.fields.Nested(MemberBriefSchema)
    lessons_completed = ma.fields.Integer()
    quizzes_passed = ma.fields.Integer()
    lessons = ma.fields.List(ma.fields.Nested(MemberLessonSchema), metadata={"description": "In lesson order"})
    quizzes = ma.fields.List(ma.fields.Nested(MemberQuizSchema))


class SeriesMembersSchema(StrictSchema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    org_unit = ma.fields.Nested(UnitBriefSchema)
    lessons = ma.fields.List(ma.fields.Nested(LessonSchema))
    items = ma.fields.List(ma.fields.Nested(SeriesMemberSchema))
    next_cursor = ma.fields.String(allow_none=True)
