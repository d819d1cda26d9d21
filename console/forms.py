"""The console's forms (WTForms). CSRF is checked for every POST in `views._check_csrf`, so the forms
themselves do not repeat it. Field-level checks here are only about shape (required, length, a date);
every rule about what may be recorded stays in the domain call, whose field errors are shown next to
the same fields."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateField, DateTimeLocalField, HiddenField, IntegerField, PasswordField,
                     SelectField, SelectMultipleField, StringField, TextAreaField, widgets)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError


REQUIRED = _l("This field is required.")
TOO_LONG = _l("At most %(max)d characters.")


class LocalDateField(DateField):
    """WTForms has no Vietnamese catalogue: its parse error is given here, in ours."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(str(_l("Not a valid date."))) from None


class TagsField(StringField):
    """Tags typed as one line, separated by commas (the list of POST /admin/documents's `tags`). Only their
    shape is checked here, as the API's schema checks it: at most 30, each at most 64 characters."""

    MAX_TAGS, MAX_LENGTH = 30, 64

    def _value(self):
        return ", ".join(self.data or []) if isinstance(self.data, list) else (self.data or "")

    def process_formdata(self, valuelist):
        self.data = [t.strip() for t in (valuelist[0] if valuelist else "").split(",") if t.strip()]

    def pre_validate(self, form):
        if len(self.data or []) > self.MAX_TAGS:
            raise ValidationError(str(_l("At most %(n)d tags.", n=self.MAX_TAGS)))
        long = [t for t in self.data or [] if len(t) > self.MAX_LENGTH]
        if long:
            raise ValidationError(str(_l("Each tag has at most %(max)d characters: %(tag)s", max=self.MAX_LENGTH,
                                    tag=long[0][:20] + "…")))


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def pre_validate(self, form):
        allowed = {value for value, _label in self.choices or []}
        if any(value not in allowed for value in self.data or []):
            raise ValidationError(str(_l("Tick only the choices listed.")))


class _Form(FlaskForm):
    class Meta:
        csrf = False


class LoginForm(_Form):
    username = StringField(_l("Party card number or phone"), validators=[DataRequired(REQUIRED), Length(max=64, message=TOO_LONG)])
    password = PasswordField(_l("Password"), validators=[DataRequired(REQUIRED), Length(max=256, message=TOO_LONG)])
    next = HiddenField()


class FollowUpForm(_Form):
    """Record a briefing for, or excuse, the members ticked in the list."""

    unit = IntegerField(validators=[Optional()])
    held_on = LocalDateField(_l("Meeting date"), validators=[Optional()])
    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), Length(max=2000, message=TOO_LONG)])
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500, message=TOO_LONG)])


class AcknowledgeForm(_Form):
    version = IntegerField(validators=[InputRequired()])


class LocalDateTimeField(DateTimeLocalField):
    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(str(_l("Not a valid date and time."))) from None


class DraftForm(_Form):
    """A new draft (the fields of POST /admin/documents that a person fills in)."""

    kind = SelectField(_l("Kind"), validators=[DataRequired(REQUIRED)])
    number = StringField(_l("Number (e.g. 24-CT/TU)"), validators=[Optional(), Length(max=64, message=TOO_LONG)])
    title = StringField(_l("Title"), validators=[DataRequired(REQUIRED), Length(max=500, message=TOO_LONG)])
    summary = TextAreaField(_l("Summary"), validators=[Optional(), Length(max=2000, message=TOO_LONG)])
    issuing_body = StringField(_l("Issuing body"), validators=[Optional(), Length(max=255, message=TOO_LONG)])
    issued_on = LocalDateField(_l("Date issued"), validators=[Optional()])
    body_html = TextAreaField(_l("Text (HTML; cleaned exactly as the API cleans it)"),
                              validators=[Optional(), Length(max=500_000, message=TOO_LONG)])
    requires_ack = BooleanField(_l("Members must confirm they have read it"), default=True)
    ack_days = IntegerField(_l("Days to confirm"), default=14,
                            validators=[InputRequired(REQUIRED), NumberRange(1, 365, message=_l("From 1 to 365."))])
    tags = TagsField(_l("Tags (separated by commas)"))
    audience_roles = CheckboxesField(_l("Only members holding one of these roles (none ticked: every member)"))


class PublishForm(_Form):
    publish_at = LocalDateTimeField(_l("Publish at (empty: now)"), validators=[Optional()])
    urgent = BooleanField(_l("Urgent: notify even during quiet hours"))


class WithdrawForm(_Form):
    reason = StringField(_l("Reason for withdrawal"), validators=[DataRequired(REQUIRED),
                                                                  Length(max=2000, message=TOO_LONG)])


class AuditFilterForm(_Form):
    action = StringField(_l("Action (e.g. document.publish)"), validators=[Optional(), Length(max=64, message=TOO_LONG)])
    since = LocalDateField(_l("From (date)"), validators=[Optional()])


class PasswordForm(_Form):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(REQUIRED),
                                                                         Length(max=256, message=TOO_LONG)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(REQUIRED),
                                                                 Length(max=256, message=TOO_LONG)])


class EditForm(_Form):
    """The content of a draft, or of a published document's next version (PATCH /admin/documents/{id})."""

    number = StringField(_l("Number (e.g. 24-CT/TU)"), validators=[Optional(), Length(max=64, message=TOO_LONG)])
    title = StringField(_l("Title"), validators=[DataRequired(REQUIRED), Length(max=500, message=TOO_LONG)])
    summary = TextAreaField(_l("Summary"), validators=[Optional(), Length(max=2000, message=TOO_LONG)])
    issuing_body = StringField(_l("Issuing body"), validators=[Optional(), Length(max=255, message=TOO_LONG)])
    issued_on = LocalDateField(_l("Date issued"), validators=[Optional()])
    body_html = TextAreaField(_l("Text (HTML; cleaned exactly as the API cleans it)"),
                              validators=[Optional(), Length(max=500_000, message=TOO_LONG)])
    tags = TagsField(_l("Tags (separated by commas)"))
    reack = BooleanField(_l("A material change: members must acknowledge again (a new deadline)"))
    note = StringField(_l("What changed (kept with the version)"), validators=[Optional(),
                                                                              Length(max=500, message=TOO_LONG)])


class RemovalForm(_Form):
    reason = StringField(_l("Reason (death, expulsion, moving out of the organisation)"),
                         validators=[DataRequired(REQUIRED), Length(max=2000, message=TOO_LONG)])
