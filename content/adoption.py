"""Adoption: per unit, how many members ever signed in, have a registered device, were active in the
last 30 days (signed in or refreshed a token), rolled up the tree.

Counted by a periodic roll-up, not in every login: `refresh()` recounts every member-holding unit with one
GROUP BY over members (with EXISTS probes into sessions and devices) and replaces `adoption_counters`
in one transaction. `run_due` calls it when the last roll-up is older than ADOPTION_REFRESH_MINUTES
(default 60), and `flask --app wsgi handbook adoption-refresh` runs it by hand, so the figures are at
most that old (`as_of` says when). Reading is then one GROUP BY over the subtree's counter rows,
O(units), like progress.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, exists, func, insert, select

from content.models import AdoptionCounter
from content.progress import child_column, scope_condition, levels
from handbook.auth import AuthSession
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit
from handbook.tables import table_bytes
from handbook.permissions import FOLLOW_UP_ROLES, forbidden, has_role_over, not_found
from handbook.timeutil import as_utc, utcnow

ACTIVE_DAYS = 30


def refresh(now: datetime | None = None) -> int:
    """Recount every unit's adoption; returns the number of unit rows written."""
    from push.models import Device

    now = now or utcnow()
    signed_in = Member.first_signed_in_at.is_not(None)
    active = exists().where(AuthSession.member_id == Member.id, func.coalesce(
        AuthSession.refreshed_at, AuthSession.created_at) >= now - timedelta(days=ACTIVE_DAYS))
    device = exists().where(Device.member_id == Member.id)
    one = lambda condition: func.sum(case((condition, 1), else_=0))  # noqa: E731
    rows = db.session.execute(
        select(Member.org_unit_id, OrgUnit.path, func.count(), one(signed_in), one(device), one(active))
        .join(OrgUnit, OrgUnit.id == Member.org_unit_id).where(Member.active.is_(True))
        .group_by(Member.org_unit_id, OrgUnit.path)).all()
    db.session.execute(delete(AdoptionCounter))
    values = [{"org_unit_id": unit_id, **levels(path), "members": members, "signed_in": int(s or 0),
               "with_device": int(d or 0), "active_30d": int(a or 0), "as_of": now}
              for unit_id, path, members, s, d, a in rows]
    if values:
        db.session.execute(insert(AdoptionCounter), values)
    db.session.commit()
    return len(values)


def refresh_if_stale(now: datetime) -> bool:
    """Called by run_due: refresh when the last roll-up is older than ADOPTION_REFRESH_MINUTES."""
    last = db.session.scalar(select(func.max(AdoptionCounter.as_of)))
    interval = timedelta(minutes=current_app.config["ADOPTION_REFRESH_MINUTES"])
    if last is not None and as_utc(last) > now - interval:
        return False
    refresh(now)
    return True


def _figures(members, signed_in, with_device, active) -> dict:
    members, signed_in, with_device, active = (int(v or 0) for v in (members, signed_in, with_device, active))

    def share(n):
        return round(n / members, 4) if members else None

    return {"members": members, "signed_in": signed_in, "with_device": with_device, "active_30d": active,
            "signed_in_share": share(signed_in), "with_device_share": share(with_device),
            "active_30d_share": share(active)}


def adoption(viewer: Member, org_unit_id: int) -> dict:
    """GET /org-units/{id}/adoption: the unit's subtree and each child, lowest share with a device first."""
    unit = db.session.get(OrgUnit, org_unit_id)
    if unit is None:
        raise not_found()
    if not has_role_over(viewer, unit, FOLLOW_UP_ROLES):
        raise forbidden()
    model = AdoptionCounter
    child = child_column(model, unit.depth)
    stmt = select(child, func.sum(model.members), func.sum(model.signed_in), func.sum(model.with_device),
                  func.sum(model.active_30d)).group_by(child)
    scope = scope_condition(model, unit)
    if scope is not None:
        stmt = stmt.where(scope)
    rows = db.session.execute(stmt).all()
    as_of = db.session.scalar(select(func.max(model.as_of)))
    totals = [sum(int(r[i] or 0) for r in rows) for i in range(1, 5)]
    child_rows = [r for r in rows if r[0] is not None and r[0] != unit.id]
    units = {u.id: u for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_([r[0] for r in child_rows])))}
    children = [{"org_unit": units[r[0]].brief(), **_figures(*r[1:])} for r in child_rows if r[0] in units]
    children.sort(key=lambda c: (c["with_device_share"] if c["with_device_share"] is not None else 1,
                                 c["org_unit"]["code"]))
    return {"org_unit": unit.brief(), **_figures(*totals), "as_of": as_of, "children": children}


HEADER = ["Mã đơn vị", "Đơn vị", "Đảng viên", "Đã đăng nhập", "Có thiết bị", "Hoạt động 30 ngày",
          "Tỷ lệ có thiết bị (%)"]


def rows(figures: dict) -> list[list]:
    out = []
    for part in [figures, *figures["children"]]:
        share = part["with_device_share"]
        out.append([part["org_unit"]["code"], part["org_unit"]["name"], part["members"], part["signed_in"],
                    part["with_device"], part["active_30d"], "" if share is None else round(share * 100, 1)])
    return out


def export(figures: dict, fmt: str) -> bytes:
    return table_bytes(HEADER, rows(figures), fmt, "Sử dụng Sổ tay")
