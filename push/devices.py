"""Devices: register, refresh, list, delete. One physical installation is one row, found by its fid or
its token; when another member signs in on that phone, the row moves to them (a phone never pushes the
previous owner's notices)."""
from __future__ import annotations

from sqlalchemy import or_, select

from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import Member
from handbook.timeutil import utcnow
from push.models import Device


def register(member: Member, data: dict) -> tuple[Device, bool]:
    """POST /me/devices: (device, created). Idempotent for the same fid/token."""
    fid, token = data.get("fid") or None, data.get("token") or None
    if fid is None and token is None:
        raise ProblemError("validation_error", 422, errors={"fid": ["fid_or_token"], "token": ["fid_or_token"]})
    matches = list(db.session.scalars(select(Device).where(or_(
        Device.fid == fid if fid else False, Device.token == token if token else False)).order_by(Device.id)
        .with_for_update()))
    device, created = (matches[0], False) if matches else (Device(member_id=member.id), True)
    for duplicate in matches[1:]:  # the fid and the token were registered apart: merge them
        db.session.delete(duplicate)
    db.session.flush()
    now = utcnow()
    device.member_id = member.id
    device.fid = fid or device.fid
    device.token = token or device.token
    device.platform = data["platform"]
    device.app_version = data.get("app_version", device.app_version)
    device.locale = data.get("locale", device.locale)
    device.last_seen_at = now
    if created:
        device.created_at = now
        db.session.add(device)
    db.session.commit()
    return device, created


def devices_of(member: Member) -> list[Device]:
    return list(db.session.scalars(select(Device).where(Device.member_id == member.id).order_by(Device.id)))


def delete(member: Member, device_id: int) -> None:
    """DELETE /me/devices/{id}: only one's own (404 otherwise)."""
    device = db.session.get(Device, device_id)
    if device is None or device.member_id != member.id:
        raise ProblemError("not_found", 404)
    db.session.delete(device)
    db.session.commit()
