"""Devices: register by fid and/or token, refresh, move between members, list, delete."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from handbook.extensions import db
from push.models import Device
from tests.factories import bearer, login, member, small_tree
from tests.test_errors import assert_problem

URL = "/api/v1/me/devices"


@pytest.fixture()
def auth(app, client):
    tree = small_tree()
    member("M1", tree["b1"])
    member("M2", tree["b2"])
    return {card: bearer(login(client, card).json["access_token"]) for card in ("M1", "M2")}


def test_register_refresh_and_list(client, auth):
    first = client.post(URL, json={"fid": "fid-1", "platform": "android", "app_version": "2.3.0",
                                   "locale": "vi-VN"}, headers=auth["M1"])
    assert first.status_code == 201
    assert (first.json["fid"], first.json["token"], first.json["platform"]) == ("fid-1", None, "android")
    again = client.post(URL, json={"fid": "fid-1", "token": "tok-1", "platform": "android", "app_version": "2.4.0"},
                        headers=auth["M1"])
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert (again.json["token"], again.json["app_version"], again.json["locale"]) == ("tok-1", "2.4.0", "vi-VN")
    assert again.json["last_seen_at"] >= first.json["last_seen_at"]
    client.post(URL, json={"token": "tok-ios", "platform": "ios"}, headers=auth["M1"])
    listed = client.get(URL, headers=auth["M1"]).json["items"]
    assert [d["platform"] for d in listed] == ["android", "ios"]
    assert client.get(URL, headers=auth["M2"]).json["items"] == []


def test_a_phone_moves_to_the_member_who_signs_in(client, auth):
    device = client.post(URL, json={"token": "shared", "platform": "android"}, headers=auth["M1"]).json
    moved = client.post(URL, json={"token": "shared", "platform": "android"}, headers=auth["M2"])
    assert moved.status_code == 200 and moved.json["id"] == device["id"]
    assert client.get(URL, headers=auth["M1"]).json["items"] == []
    assert [d["id"] for d in client.get(URL, headers=auth["M2"]).json["items"]] == [device["id"]]


def test_fid_and_token_registered_apart_are_merged(client, auth):
    client.post(URL, json={"fid": "F", "platform": "android"}, headers=auth["M1"])
    client.post(URL, json={"token": "T", "platform": "android"}, headers=auth["M1"])
    merged = client.post(URL, json={"fid": "F", "token": "T", "platform": "android"}, headers=auth["M1"])
    assert merged.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Device)) == 1
    assert (merged.json["fid"], merged.json["token"]) == ("F", "T")


@pytest.mark.parametrize("body, field", [
    ({"platform": "android"}, "fid"),
    ({"fid": "x", "platform": "symbian"}, "platform"),
    ({"fid": "x"}, "platform"),
    ({"fid": "", "platform": "web"}, "fid"),
    ({"fid": "x" * 256, "platform": "web"}, "fid"),
    ({"fid": 5, "platform": "web"}, "fid"),
    ({"fid": "x", "platform": "web", "owner": 1}, "owner"),
])
def test_bad_registrations(client, auth, body, field):
    response = client.post(URL, json=body, headers=auth["M1"])
    assert_problem(response, 422, "validation_error")
    assert field in response.json["errors"]
    assert db.session.scalar(select(func.count()).select_from(Device)) == 0


def test_delete_only_own_devices(client, auth):
    device = client.post(URL, json={"fid": "A", "platform": "web"}, headers=auth["M1"]).json
    assert_problem(client.delete(f"{URL}/{device['id']}", headers=auth["M2"]), 404, "not_found")
    assert_problem(client.delete(f"{URL}/999999", headers=auth["M1"]), 404, "not_found")
    assert client.delete(f"{URL}/{device['id']}", headers=auth["M1"]).status_code == 204
    assert client.get(URL, headers=auth["M1"]).json["items"] == []
    assert_problem(client.get(URL), 401, "unauthorized")
