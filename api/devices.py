"""POST/GET /me/devices, DELETE /me/devices/{id}."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required
from api.schemas import DeviceInSchema, DeviceListSchema, DeviceSchema
from push import devices

PREFIX = "/me/devices"
blp = Blueprint("devices", __name__, description="Thiết bị nhận thông báo")


@blp.route("", methods=["POST"])
@auth_required()
@blp.arguments(DeviceInSchema)
@blp.response(201, DeviceSchema, description="A new device")
@blp.alt_response(200, schema=DeviceSchema, description="A known device refreshed (or moved to this member)")
def register(args):
    """Register this phone for pushes, or refresh it (fid and/or token). Safe to repeat at every start."""
    device, created = devices.register(current_user, args)
    return device.view(), 201 if created else 200


@blp.route("", methods=["GET"])
@auth_required()
@blp.response(200, DeviceListSchema)
def list_devices():
    """The caller's devices."""
    return {"items": [d.view() for d in devices.devices_of(current_user)]}


@blp.route("/<int:device_id>", methods=["DELETE"])
@auth_required()
@blp.response(204)
@blp.alt_response(404, description="not_found: no such device of the caller")
def delete_device(device_id):
    """Stop pushes to a device (e.g. at sign-out)."""
    devices.delete(current_user, device_id)
