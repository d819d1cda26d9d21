"""Quizzes in the console (issue 17): the same calls as /api/v1 (content.quizzes, content.study).

- Publishers (whoever manages the document): attach a quiz to a lesson or a directive, edit its settings
  and its bank (a form of question slots: works without JavaScript; "one more question" re-renders the
  form with what was typed), the minimum reading time of the document.
- Members: a quiz's rules and their standing, start an attempt, answer it (the page holds the attempt's
  own shuffled options and keys, never which one is right), submit, see the result.
- Follow-up roles: results per unit rolled up (a chart and a table, drill-down), the member list with
  CSV/XLSX; a series' progress per member; a contest's ranking for the organising committee.

The views only read forms into the shape the domain takes (numbers, dates); every rule is the domain's,
and its field errors are shown next to the fields they name.
"""
from __future__ import annotations

from datetime import datetime

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from console import charts
from console.session import login_required
from console.views import _field_errors, _id_arg, bp
from content import quizzes, study
from handbook.errors import ProblemError
from handbook.i18n import field_message, problem_text
from handbook.permissions import PUBLISH_ROLES
from handbook.tables import download
from handbook.timeutil import as_utc, local_zone, utcnow
from handbook.unitpicker import pickable_units, units_by_id

SLOTS = 3               # question slots of a new quiz
MAX_SLOTS = 200         # a bank edited in one form (the API takes up to 500)
OPTION_SLOTS = 6        # option slots of a question (up to quizzes.MAX_OPTIONS)
KINDS = ("single", "multiple")


# --- publishers: the quizzes of a document, a quiz's form, the minimum reading time ------------------

@bp.route("/board/documents/<int:document_id>/quizzes")
@login_required
def board_quizzes(member, document_id):
    listing = quizzes.managed_quizzes(member, document_id)
    return render_template("quizzes/board.html", doc=listing["document"], items=listing["items"],
                           rules=listing["ack_rules"], errors={}, values={})


@bp.route("/board/documents/<int:document_id>/ack-rules", methods=["POST"])
@login_required
def board_ack_rules(member, document_id):
    raw = (request.form.get("min_read_seconds") or "").strip()
    errors: dict[str, list[str]] = {}
    seconds = None
    if raw:
        seconds = _int(raw, 0, 86400)
        if seconds is None:
            errors["min_read_seconds"] = [_("A whole number from %(a)d to %(b)d.", a=0, b=86400)]
    if not errors:
        try:
            quizzes.set_ack_rules(member, document_id, seconds)
        except ProblemError as e:
            if e.code != "ack_not_required" and e.status != 422:
                raise
            errors = _field_errors(e) if e.status == 422 else {"min_read_seconds": [field_message(e.code)]}
        else:
            flash(_("The minimum reading time is saved."), "success")
            return redirect(url_for("console.board_quizzes", document_id=document_id), 303)
    listing = quizzes.managed_quizzes(member, document_id)
    return render_template("quizzes/board.html", doc=listing["document"], items=listing["items"],
                           rules=listing["ack_rules"], errors=errors, values=request.form), 422


def _int(raw: str, low: int, high: int) -> int | None:
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        return None
    value = int(raw)
    return value if low <= value <= high else None


def _local_datetime(raw: str) -> datetime | None | bool:
    """A datetime-local field: None when empty, False when unreadable."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=local_zone())
    except ValueError:
        return False


def _slots_from(quiz: dict | None) -> list[dict]:
    """The form's question slots from a stored bank (plus one empty option slot each)."""
    if quiz is None:
        return [{"kind": "single", "text": "", "points": "1", "options": [{"text": "", "correct": False}] * 4}
                for _ in range(SLOTS)]
    slots = []
    for q in quiz["questions"]:
        options = [{"text": o["text"], "correct": o["correct"]} for o in q["options"]]
        extra = max(0, min(quizzes.MAX_OPTIONS, len(options) + 1) - len(options))
        slots.append({"kind": q["kind"], "text": q["text"], "points": str(q["points"]),
                      "options": options + [{"text": "", "correct": False}] * extra})
    return slots


def _slots_posted(form) -> list[dict]:
    count = _int(form.get("count", ""), 0, MAX_SLOTS) or 0
    slots = []
    for i in range(count):
        width = _int(form.get(f"q{i}_width", ""), 2, quizzes.MAX_OPTIONS) or OPTION_SLOTS
        slots.append({"kind": form.get(f"q{i}_kind", "single"), "text": form.get(f"q{i}_text", "")[:5000],
                      "points": form.get(f"q{i}_points", "1"),
                      "options": [{"text": form.get(f"q{i}_o{j}", "")[:2000], "correct": bool(form.get(f"q{i}_c{j}"))}
                                  for j in range(width)]})
    return slots


def _settings_values(quiz: dict | None) -> dict:
    if quiz is None:
        return {"title": "", "pass_mark": "80", "time_limit": "", "max_attempts": "", "draw_count": "",
                "reveal_answers": True, "required_for_ack": False, "contest": False}
    contest = quiz["contest"]
    return {"title": quiz["title"], "pass_mark": str(quiz["pass_mark"]),
            "time_limit": str(quiz["time_limit_seconds"] // 60) if quiz["time_limit_seconds"] else "",
            "max_attempts": str(quiz["max_attempts"] or ""), "draw_count": str(quiz["draw_count"] or ""),
            "reveal_answers": quiz["reveal_answers"], "required_for_ack": quiz["required_for_ack"],
            "contest": contest is not None, "contest_unit": str(contest["org_unit"]["id"]) if contest else "",
            "opens_at": _field_time(contest["opens_at"]) if contest else "",
            "closes_at": _field_time(contest["closes_at"]) if contest else ""}


def _field_time(value: datetime | None) -> str:
    return "" if value is None else as_utc(value).astimezone(local_zone()).strftime("%Y-%m-%dT%H:%M")


def _read_form(form) -> tuple[dict, list[dict], dict, dict, list[int]]:
    """(settings values, question slots, the domain's data, shape errors, slot index of each question
    sent to the domain)."""
    values = {name: form.get(name, "") for name in ("title", "pass_mark", "time_limit", "max_attempts",
                                                    "draw_count", "contest_unit", "opens_at", "closes_at")}
    for name in ("reveal_answers", "required_for_ack", "contest"):
        values[name] = bool(form.get(name))
    slots = _slots_posted(form)
    errors: dict[str, list[str]] = {}
    required = [_("This field is required.")]
    data: dict = {"title": values["title"].strip()[:500], "reveal_answers": values["reveal_answers"],
                  "required_for_ack": values["required_for_ack"]}
    if not data["title"]:
        errors["title"] = required
    pass_mark = _int(values["pass_mark"], 0, 100)
    if pass_mark is None:
        errors["pass_mark"] = [_("A whole number from %(a)d to %(b)d.", a=0, b=100)]
    data["pass_mark"] = pass_mark
    for name, key, low, high, scale in (("time_limit", "time_limit_seconds", 1, 1440, 60),
                                        ("max_attempts", "max_attempts", 1, 100, 1),
                                        ("draw_count", "draw_count", 1, 500, 1)):
        if not values[name].strip():
            data[key] = None
            continue
        number = _int(values[name], low, high)
        if number is None:
            errors[key] = [_("A whole number from %(a)d to %(b)d.", a=low, b=high)]
        else:
            data[key] = number * scale
    if values["contest"]:
        unit = _int(values["contest_unit"], 1, 2**31 - 1)
        opens, closes = _local_datetime(values["opens_at"]), _local_datetime(values["closes_at"])
        if unit is None:
            errors["contest.org_unit"] = required
        if opens is False:
            errors["contest.opens_at"] = [_("Not a valid date and time.")]
        if closes is False:
            errors["contest.closes_at"] = [_("Not a valid date and time.")]
        data["contest"] = {"org_unit": unit, "opens_at": opens or None, "closes_at": closes or None}
    else:
        data["contest"] = None
    questions, where = [], []
    for i, slot in enumerate(slots):
        text = slot["text"].strip()
        options = [{"text": o["text"].strip(), "correct": o["correct"]} for o in slot["options"] if o["text"].strip()]
        if not text and not options:
            continue                       # an empty slot
        if not text:
            errors[f"q{i}_text"] = required
        if slot["kind"] not in KINDS:
            errors[f"q{i}_kind"] = required
        if len(options) < 2:
            errors[f"q{i}_options"] = [_("At least two options.")]
        points = _int(slot["points"] or "1", 1, 100)
        if points is None:
            errors[f"q{i}_points"] = [_("A whole number from %(a)d to %(b)d.", a=1, b=100)]
        questions.append({"kind": slot["kind"], "text": text, "options": options, "points": points or 1})
        where.append(i)
    if not questions:
        errors["questions"] = [_("Write at least one question.")]
    data["questions"] = questions
    return values, slots, data, errors, where


def _domain_errors(e: ProblemError, where: list[int]) -> dict[str, list[str]]:
    """The domain's field names (questions.3.options) as the form's (q5_options)."""
    out: dict[str, list[str]] = {}
    for field, messages in _field_errors(e).items():
        parts = field.split(".")
        if parts[0] == "questions" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(where):
            field = f"q{where[int(parts[1])]}_{parts[2]}"
        out.setdefault(field, []).extend(messages)
    return out


def _units_for(member, values: dict) -> list:
    units = pickable_units(member, PUBLISH_ROLES)
    picked = _int(values.get("contest_unit") or "", 1, 2**31 - 1)
    if picked and all(u.id != picked for u in units):
        units = [*units_by_id([picked]), *units]
    return units


def _quiz_form(member, doc, values, slots, errors, quiz=None, status=200):
    return render_template("quizzes/form.html", doc=doc, quiz=quiz, values=values, slots=slots, errors=errors,
                           units=_units_for(member, values), kinds=KINDS), status


def _more(slots: list[dict]) -> list[dict]:
    if len(slots) < MAX_SLOTS:
        slots.append({"kind": "single", "text": "", "points": "1", "options": [{"text": "", "correct": False}] * 4})
    return slots


@bp.route("/board/documents/<int:document_id>/quizzes/new", methods=["GET", "POST"])
@login_required
def new_quiz(member, document_id):
    doc = quizzes.managed_quizzes(member, document_id)["document"]
    if request.method == "GET":
        return _quiz_form(member, doc, _settings_values(None), _slots_from(None), {})
    values, slots, data, shape_errors, where = _read_form(request.form)
    if request.form.get("action") == "more":
        return _quiz_form(member, doc, values, _more(slots), {})
    if shape_errors:
        return _quiz_form(member, doc, values, slots, shape_errors, status=422)
    try:
        quiz = quizzes.create_quiz(member, document_id, data)
    except ProblemError as e:
        if e.status != 422:
            raise
        return _quiz_form(member, doc, values, slots, _domain_errors(e, where), status=422)
    flash(_("The quiz is saved."), "success")
    return redirect(url_for("console.edit_quiz", quiz_id=quiz.id), 303)


@bp.route("/board/quizzes/<int:quiz_id>", methods=["GET", "POST"])
@login_required
def edit_quiz(member, quiz_id):
    """PATCH /admin/quizzes/{id}: the settings, and the bank when it changed (a changed bank retires the
    old questions: attempts already started keep theirs)."""
    quiz, doc = quizzes.managed_quiz(member, quiz_id)
    current = quizzes.admin_view(quiz)
    if request.method == "GET":
        return _quiz_form(member, doc, _settings_values(current), _slots_from(current), {}, quiz=current)
    values, slots, data, shape_errors, where = _read_form(request.form)
    if request.form.get("action") == "more":
        return _quiz_form(member, doc, values, _more(slots), {}, quiz=current)
    if shape_errors:
        return _quiz_form(member, doc, values, slots, shape_errors, quiz=current, status=422)
    stored = [{"kind": q["kind"], "text": q["text"], "points": q["points"],
               "options": [{"text": o["text"], "correct": o["correct"]} for o in q["options"]]}
              for q in current["questions"]]
    if data["questions"] == stored:
        data.pop("questions")              # the same bank: question statistics keep their questions
    try:
        quizzes.update_quiz(member, quiz_id, data)
    except ProblemError as e:
        if e.status != 422:
            raise
        return _quiz_form(member, doc, values, slots, _domain_errors(e, where), quiz=current, status=422)
    flash(_("The quiz is saved."), "success")
    return redirect(url_for("console.edit_quiz", quiz_id=quiz_id), 303)


# --- members: a quiz, an attempt ----------------------------------------------------------------------

@bp.route("/quizzes/<int:quiz_id>")
@login_required
def quiz_page(member, quiz_id):
    quiz, doc = quizzes.readable_quiz(member, quiz_id)
    return render_template("quizzes/quiz.html", q=quizzes.reader_view(quiz, member), doc=doc)


@bp.route("/quizzes/<int:quiz_id>/attempts", methods=["POST"])
@login_required
def quiz_start(member, quiz_id):
    try:
        attempt, _created = quizzes.start_attempt(member, quiz_id, platform="web")
    except ProblemError as e:
        if e.status != 409:
            raise
        flash(problem_text(e.code, e.params)[1], "warning")
        return redirect(url_for("console.quiz_page", quiz_id=quiz_id), 303)
    return redirect(url_for("console.attempt_page", attempt_id=attempt["id"]), 303)


def _attempt_context(member, attempt_id: int) -> dict:
    attempt = quizzes.own_attempt(member, attempt_id)
    view = quizzes.attempt_view(attempt, token=attempt.status == "started")
    quiz, doc = quizzes.readable_quiz(member, attempt.quiz_id)
    return {"a": view, "quiz": quizzes.reader_view(quiz, member), "doc": doc}


@bp.route("/attempts/<int:attempt_id>")
@login_required
def attempt_page(member, attempt_id):
    """The attempt: its questions to answer while it is open; its result once submitted."""
    return render_template("quizzes/attempt.html", **_attempt_context(member, attempt_id), errors={},
                           now=utcnow())


@bp.route("/attempts/<int:attempt_id>", methods=["POST"])
@login_required
def attempt_submit(member, attempt_id):
    context = _attempt_context(member, attempt_id)
    answers = []
    for question in context["a"]["questions"]:
        keys = [k for k in request.form.getlist(f"q{question['id']}")[:quizzes.MAX_OPTIONS] if len(k) <= 16]
        if keys:
            answers.append({"question_id": question["id"], "options": keys})
    try:
        quizzes.submit_attempt(member, attempt_id, request.form.get("token", "")[:128], answers)
    except ProblemError as e:
        if e.code == "attempt_late":
            flash(_("Too late: the time for this attempt is over. Your answers are kept but not graded."), "warning")
            return redirect(url_for("console.attempt_page", attempt_id=attempt_id), 303)
        if e.status != 422:
            raise
        return render_template("quizzes/attempt.html", **context, errors=_field_errors(e), now=utcnow()), 422
    flash(_("Your answers are submitted."), "success")
    return redirect(url_for("console.attempt_page", attempt_id=attempt_id), 303)


# --- follow-up: results, the member list, a series, a contest's ranking --------------------------------

@bp.route("/quizzes/<int:quiz_id>/results")
@login_required
def quiz_results(member, quiz_id):
    unit_id = _id_arg("unit")
    fmt = request.args.get("format")
    if fmt in ("csv", "xlsx"):
        chunks, filename = quizzes.export_results(member, quiz_id, org_unit=unit_id, fmt=fmt)
        return download(chunks, fmt, filename)
    figures = quizzes.unit_results(member, quiz_id, unit_id)
    unit = figures["org_unit"]["id"]
    chart = charts.share_bars(figures["children"], lambda c: 100 * c["passed"] / c["members"] if c["members"] else None,
                              lambda c: url_for("console.quiz_results", quiz_id=quiz_id, unit=c["org_unit"]["id"]),
                              _("Members who passed, by unit"))
    rows, next_cursor = quizzes.member_results(member, quiz_id, org_unit=unit, limit=50,
                                               cursor=request.args.get("cursor") or None)
    return render_template("quizzes/results.html", f=figures, chart=chart, rows=rows, next_cursor=next_cursor,
                           quiz_id=quiz_id, unit_id=unit)


@bp.route("/quizzes/<int:quiz_id>/ranking")
@login_required
def quiz_ranking(member, quiz_id):
    by = "units" if request.args.get("by") == "units" else "members"
    body, next_cursor = quizzes.ranking(member, quiz_id, org_unit=_id_arg("unit"), by=by, limit=50,
                                        cursor=request.args.get("cursor") or None)
    return render_template("quizzes/ranking.html", r=body, next_cursor=next_cursor, quiz_id=quiz_id, by=by)


@bp.route("/series/<int:series_id>")
@login_required
def series_page(member, series_id):
    """The member's own progress through a series' lessons and quizzes."""
    return render_template("quizzes/series.html", s=study.my_series_study(member, series_id))


@bp.route("/series/<int:series_id>/members")
@login_required
def series_members_page(member, series_id):
    body, next_cursor = study.series_members(member, series_id, org_unit=_id_arg("unit"), limit=50,
                                             cursor=request.args.get("cursor") or None)
    return render_template("quizzes/series_members.html", s=body, next_cursor=next_cursor, series_id=series_id)
