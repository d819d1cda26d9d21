"""The board's pages (publishers and admins): documents by status, a new draft, the preview as a member
sees it, attachments, publish now / schedule / urgent, withdraw. The same calls as /api/v1/admin/documents.
"""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from console.forms import DraftForm, EditForm, PublishForm, WithdrawForm
from console.session import login_required
from console.views import _field_errors, bp
from content import attachments, documents
from content.models import Kind, Status
from handbook.errors import ProblemError
from handbook.permissions import PUBLISH_ROLES
from handbook.roles import ROLES
from handbook.timeutil import local_zone
from handbook.unitpicker import pickable_units, units_by_id
from push import inbox

STATUSES = [s.value for s in Status]
KINDS = [k.value for k in Kind]


@bp.route("/board")
@login_required
def board(member):
    """GET /admin/documents: the documents issued in the caller's publishing scope, by status."""
    status = request.args.get("status")
    status = status if status in STATUSES else None
    items, next_cursor = documents.admin_list(member, status=status, limit=30,
                                              cursor=request.args.get("cursor") or None)
    return render_template("console/board.html", items=[documents.admin_view(d) for d in items],
                           next_cursor=next_cursor, status=status, statuses=STATUSES)


def _audience_ids() -> list[int]:
    return [int(v) for v in request.form.getlist("audience")[:200] if v.isascii() and v.isdigit() and len(v) < 11]


@bp.route("/board/new", methods=["GET", "POST"])
@login_required
def new_draft(member):
    """A draft (POST /admin/documents). The audience is picked from the caller's publishing scope; the
    search button looks units up by name without losing what was typed."""
    form = DraftForm(request.form if request.method == "POST" else None)
    form.kind.choices = [(k, k) for k in KINDS]
    form.audience_roles.choices = [(r, r) for r in ROLES]
    ticked = _audience_ids()
    q = (request.form.get("unit_q") or "").strip()[:100]
    status = 200
    if request.method == "POST" and request.form.get("action") == "save":
        if form.validate() and ticked:
            data = {"kind": form.kind.data, "number": form.number.data or None, "title": form.title.data,
                    "summary": form.summary.data or "", "body_html": form.body_html.data or "",
                    "issuing_body": form.issuing_body.data or None, "issued_on": form.issued_on.data,
                    "requires_ack": form.requires_ack.data, "ack_days": form.ack_days.data,
                    "tags": form.tags.data, "audience": {"org_units": ticked}}
            if form.audience_roles.data:
                data["audience"]["roles"] = form.audience_roles.data
            try:
                doc = documents.create_document(member, data)
            except ProblemError as e:
                if e.status != 422:
                    raise
                for name, messages in _field_errors(e).items():
                    field = getattr(form, name, None)
                    if field is not None:
                        field.errors = [m if isinstance(m, str) else _("Check the audience.") for m in messages]
            else:
                flash(_("Draft saved. Check it as members will see it, then publish."), "success")
                return redirect(url_for("console.board_document", document_id=doc.id), 303)
        status = 422
        if not ticked:
            form.audience_errors = [_("Tick at least one unit.")]
    elif request.method == "GET":
        documents.require_publisher(member)
    choices = pickable_units(member, PUBLISH_ROLES, q)
    picked = units_by_id(ticked)
    shown = {u.id for u in picked}
    return render_template("console/draft.html", form=form, q=q, picked=picked, roles=ROLES,
                           choices=[u for u in choices if u.id not in shown], kinds=KINDS), status


@bp.route("/board/documents/<int:document_id>")
@login_required
def board_document(member, document_id):
    """The document as its managers see it (GET /admin/documents/{id}) and its members will read it."""
    row = documents.admin_document(member, document_id)
    doc = documents.admin_view(row, detail=True)
    stats = None
    if row.status in ("published", "withdrawn") and row.published_at is not None:
        notification_id = documents.publication_result(row)["notification_id"]
        stats = inbox.notification_stats(member, notification_id) if notification_id else None
    return render_template("console/board_document.html", doc=doc, publish=PublishForm(),
                           withdraw=WithdrawForm(), statuses=STATUSES, stats=stats)


@bp.route("/board/documents/<int:document_id>/edit", methods=["GET", "POST"])
@login_required
def edit(member, document_id):
    """PATCH /admin/documents/{id}: a draft is edited in place; a published document gets a new version,
    a correction (acknowledgements kept) or, ticked, a material change (members acknowledge again)."""
    row = documents.admin_document(member, document_id)
    if request.method == "GET":
        form = EditForm(obj=row)
        return render_template("console/edit.html", form=form, doc=documents.admin_view(row))
    form = EditForm(request.form)
    if form.validate():
        data = {name: getattr(form, name).data for name in ("number", "title", "summary", "issuing_body",
                                                             "issued_on", "body_html", "tags")}
        data["summary"], data["body_html"] = data["summary"] or "", data["body_html"] or ""
        data["number"], data["issuing_body"] = data["number"] or None, data["issuing_body"] or None
        if row.status == "published":
            data.update(reack=form.reack.data, note=form.note.data or None)
        try:
            documents.update_document(member, document_id, data)
        except ProblemError as e:
            if e.status != 422:
                raise
            for name, messages in _field_errors(e).items():
                if hasattr(form, name):
                    getattr(form, name).errors = messages
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("console.board_document", document_id=document_id), 303)
    return render_template("console/edit.html", form=form, doc=documents.admin_view(row)), 422


@bp.route("/board/documents/<int:document_id>/publish", methods=["POST"])
@login_required
def publish(member, document_id):
    """POST /admin/documents/{id}/publish: now, or at a local date and time; urgent ignores quiet hours."""
    form = PublishForm(request.form)
    if not form.validate():
        doc = documents.admin_view(documents.admin_document(member, document_id), detail=True)
        return render_template("console/board_document.html", doc=doc, publish=form, withdraw=WithdrawForm(),
                               statuses=STATUSES), 422
    at = form.publish_at.data.replace(tzinfo=local_zone()) if form.publish_at.data else None
    result = documents.publish_document(member, document_id, at, urgent=form.urgent.data)
    flash(_("Scheduled.") if result["status"] == "scheduled" else _("Published: members are being notified."),
          "success")
    return redirect(url_for("console.board_document", document_id=document_id), 303)


@bp.route("/board/documents/<int:document_id>/withdraw", methods=["POST"])
@login_required
def withdraw(member, document_id):
    """POST /admin/documents/{id}/withdraw with a reason (acknowledgements are kept)."""
    form = WithdrawForm(request.form)
    if not form.validate() or not form.reason.data.strip():
        form.reason.errors = [_("Enter the reason.")]
        doc = documents.admin_view(documents.admin_document(member, document_id), detail=True)
        return render_template("console/board_document.html", doc=doc, publish=PublishForm(), withdraw=form,
                               statuses=STATUSES), 422
    documents.withdraw_document(member, document_id, form.reason.data)
    flash(_("Withdrawn."), "success")
    return redirect(url_for("console.board_document", document_id=document_id), 303)


@bp.route("/board/documents/<int:document_id>/attachments", methods=["POST"])
@login_required
def upload(member, document_id):
    """POST /admin/documents/{id}/attachments: PDF, DOCX or an image, typed by its bytes."""
    doc = attachments.managed_for_change(member, document_id)
    file = request.files.get("file")
    if file is None or not file.filename:
        flash(_("Choose a file to attach."), "warning")
    else:
        try:
            attachments.add_attachment(member, doc, file)
        except ProblemError as e:
            if e.status not in (413, 415, 422):
                raise
            flash(_("This file cannot be attached: only PDF, DOCX or images whose name matches their content."),
                  "warning")
        else:
            flash(_("Attached."), "success")
    return redirect(url_for("console.board_document", document_id=document_id), 303)

