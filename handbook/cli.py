"""`flask --app wsgi handbook ...` commands."""
from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

handbook_cli = AppGroup("handbook", help="Sổ tay đảng viên: imports, demo data and operations.")


def _run_import(importer, file) -> None:
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        report = importer(file)
    except (OperationalError, InterfaceError) as e:  # nothing was written: the import is one transaction
        raise click.ClickException(f"database unavailable ({type(e).__name__}); nothing imported, "
                                   "run the import again") from None
    for line in report.summary_lines():
        click.echo(line)
    for error in report.errors:
        column = f", column {error.column}" if error.column else ""
        click.echo(f"  line {error.line}{column} [{error.code}]: {error.reason()}", err=True)
    sys.exit(1 if report.errors else 0)


@handbook_cli.command("import-org-units")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_org_units_command(file):
    """Import org units (CSV or XLSX: code,name,kind,parent_code). All-or-nothing."""
    from handbook.imports import import_org_units

    _run_import(import_org_units, file)


@handbook_cli.command("import-members")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_members_command(file):
    """Import members (CSV or XLSX: card_number,full_name,phone,org_unit_code,roles,password)."""
    from handbook.imports import import_members

    _run_import(import_members, file)


@handbook_cli.command("remove-member")
@click.argument("card_number")
@click.option("--reason", required=True, help="Why the member leaves (kept in the audit trail).")
def remove_member_command(card_number, reason):
    """Remove a member: inactive, sessions revoked, roles taken back, progress recounted; audited."""
    from handbook.removal import remove_by_card
    from handbook.text import nfc

    try:
        removed = remove_by_card(nfc(card_number.strip()), nfc(reason.strip()))
    except LookupError:
        raise click.ClickException(f"no member with card number {card_number}") from None
    click.echo(f"Member {card_number} removed." if removed else f"Member {card_number} was already inactive.")


@handbook_cli.command("demo")
@click.option("--members", "members", type=click.IntRange(min=10), default=2000, show_default=True,
              help="How many members to create.")
@click.option("--if-empty", is_flag=True, help="Do nothing (but print the demo logins) if data exists.")
@click.option("--seed", type=int, default=2023, show_default=True)
def demo_command(members, if_empty, seed):
    """Load a Hanoi-shaped demo tree with N members and a few documents; print the demo logins."""
    from handbook.demo import DemoExists, demo_logins, load_demo

    from content.demo import load_demo_documents
    from content.demo_activity import load_demo_activity
    from content.quiz_demo import load_demo_quizzes

    try:
        load_demo(members, seed=seed)
    except DemoExists:
        if not if_empty:
            raise click.ClickException("the database already holds org units; demo data not loaded") from None
        click.echo("Database already has data; demo data not loaded.")
    else:
        for line in load_demo_documents() + load_demo_activity() + load_demo_quizzes(seed):
            click.echo(line)
    for line in demo_logins():
        click.echo(line)


@handbook_cli.command("prune-sessions")
def prune_sessions_command():
    """Delete expired refresh tokens and long-ended login sessions (run daily)."""
    from handbook.auth import prune_sessions

    tokens, sessions = prune_sessions()
    click.echo(f"Pruned {tokens} expired refresh tokens and {sessions} ended sessions.")


@handbook_cli.command("recount")
@click.option("--document", "document_ids", type=int, multiple=True, help="Only these documents (repeatable).")
def recount_command(document_ids):
    """Rebuild the progress counters of active documents from the raw receipts (repair)."""
    from content.progress import recount
    from handbook.extensions import db

    rows = recount(document_ids or None)
    db.session.commit()
    click.echo(f"Recounted: {rows} unit rows written.")


@handbook_cli.command("adoption-refresh")
def adoption_refresh_command():
    """Roll up the adoption figures now (run_due does it every ADOPTION_REFRESH_MINUTES)."""
    from content.adoption import refresh

    click.echo(f"Adoption rolled up: {refresh()} unit rows written.")


@handbook_cli.command("recount-quizzes")
@click.option("--quiz", "quiz_ids", type=int, multiple=True, help="Only these quizzes (repeatable).")
def recount_quizzes_command(quiz_ids):
    """Rebuild the quizzes' per-unit result counters from the members' results (repair)."""
    from content.quizzes import recount
    from handbook.extensions import db

    rows = recount(quiz_ids or None)
    db.session.commit()
    click.echo(f"Recounted: {rows} quiz unit rows written.")


@handbook_cli.command("recount-meetings")
def recount_meetings_command():
    """Rebuild the meetings' monthly per-unit counters from the closed meetings (repair; after meetings
    were written other than by closing them)."""
    from content.meetings import recount_month_counters
    from handbook.extensions import db

    rows = recount_month_counters()
    db.session.commit()
    click.echo(f"Recounted: {rows} meeting month rows written.")


push_cli = AppGroup("push", help="Publications, reminders and escalations that fall due.")
handbook_cli.add_command(push_cli)


@push_cli.command("run-due")
@click.option("--at", "at", default=None, metavar="RFC3339",
              help="The instant to run for (default now), e.g. 2026-12-01T08:00:00+07:00.")
def run_due_command(at):
    """Send every scheduled publication, reminder and escalation due at that instant. Safe to run twice."""
    from datetime import datetime

    from push.due import run_due

    instant = None
    if at is not None:
        try:
            instant = datetime.fromisoformat(at)
        except ValueError:
            raise click.BadParameter("not an RFC 3339 time", param_hint="--at") from None
        if instant.tzinfo is None:
            raise click.BadParameter("needs a UTC offset, e.g. +07:00", param_hint="--at")
    lines = run_due(instant)
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("Nothing due.")


@push_cli.command("prune")
@click.option("--batch", type=click.IntRange(1, 100000), default=None,
              help="Rows deleted per transaction (default RETENTION_BATCH).")
def prune_command(batch):
    """Delete deliveries, inbox items and sessions past retention, in short batches. Safe to run twice."""
    from push.retention import prune

    click.echo(prune(batch=batch).describe().capitalize() + ".")


def register_cli(app: Flask) -> None:
    app.cli.add_command(handbook_cli)
