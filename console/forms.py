"""The console's forms (WTForms). CSRF is checked for every POST in `views._check_csrf`, so the forms
themselves do not repeat it. Field-level checks here are only about shape (required, length, a date);
every rule about what may be recorded stays in the domain call, whose field errors are shown next to
the same fields."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional


REQUIRED = _l("This field is required.")
TOO_LONG = _l("At most %(max)d characters.")


class LocalDateField(DateField):
    """WTForms has no Vietnamese catalogue: its parse error is given here, in ours."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(str(_l("Not a valid date."))) from None


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
