"""Granting and taking back one role (handbook/roles.py): the API's /admin/members/{id}/roles and the
console's member page, with the same rules (admin scope, 404 for a member outside it, 403 for a unit
outside it, never the last admin), audited, and counting from the member's next request."""
from __future__ import annotations

from sqlalchemy import select

from handbook.audit import AuditEntry
from handbook.extensions import db
from handbook.members import RoleGrant
from tests.console_helpers import assert_page, browser, post
from tests.factories import bearer, login, member
from tests.test_console import people, table_counts  # noqa: F401  (fixtures)
from tests.test_errors import assert_problem

API = "/api/v1/admin/members"


def held(member_) -> set[tuple[str, str]]:
    db.session.expire_all()
    return {(g.role, g.org_unit.code) for g in db.session.scalars(
        select(RoleGrant).where(RoleGrant.member_id == member_.id))}


def test_the_api_grants_and_takes_back_one_role_within_the_admin_s_scope(app, client, people, tree):
    a1 = bearer(login(client, "A1").json["access_token"])
    m1, b1 = people["M1"], tree["b1"]
    # Before: a plain reader cannot see progress.
    m1_token = bearer(login(client, "M1").json["access_token"])
    assert client.get(f"/api/v1/org-units/{b1.id}/overview", headers=m1_token).status_code == 403
    r = client.post(f"{API}/{m1.id}/roles", headers=a1, json={"role": "committee", "org_unit": b1.id})
    assert r.status_code == 201 and r.json == {"role": "committee", "org_unit": b1.brief()}
    assert client.post(f"{API}/{m1.id}/roles", headers=a1, json={"role": "committee", "org_unit": b1.id}).status_code == 200
    assert held(m1) == {("committee", "HN.BD.DB.1")}
    assert client.get(f"/api/v1/org-units/{b1.id}/overview", headers=m1_token).status_code == 200   # next request
    assert client.get(f"{API}/{m1.id}/roles", headers=a1).json["items"] == [{"role": "committee", "org_unit": b1.brief()}]
    assert client.delete(f"{API}/{m1.id}/roles?role=committee&org_unit={b1.id}", headers=a1).status_code == 204
    assert client.delete(f"{API}/{m1.id}/roles?role=committee&org_unit={b1.id}", headers=a1).status_code == 204   # idempotent
    assert held(m1) == set()
    assert client.get(f"/api/v1/org-units/{b1.id}/overview", headers=m1_token).status_code == 403
    audit = [(e.action, e.details["role"]) for e in db.session.scalars(
        select(AuditEntry).where(AuditEntry.action.like("role.%")).order_by(AuditEntry.id))]
    assert audit == [("role.grant", "committee"), ("role.revoke", "committee")]
    # Bad input: 422 with the field, nothing written.
    body = assert_problem(client.post(f"{API}/{m1.id}/roles", headers=a1, json={"role": "king", "org_unit": b1.id}),
                          422, "validation_error")
    assert "role" in body["errors"]
    body = assert_problem(client.delete(f"{API}/{m1.id}/roles?role=king&org_unit={b1.id}", headers=a1), 422, "validation_error")
    assert "role" in body["errors"]
    body = assert_problem(client.post(f"{API}/{m1.id}/roles", headers=a1, json={"role": "admin", "org_unit": 99999}),
                          422, "validation_error")
    assert body["errors"] == {"org_unit": ["Không có đơn vị này."]}
    assert held(m1) == set()


def test_a_district_admin_reaches_only_its_district(app, client, people, tree):
    member("AD", tree["b2"], name="Quản trị Ba Đình",
           roles=[("admin", tree["ba_dinh"])])
    ad = bearer(login(client, "AD").json["access_token"])
    m1, c2 = people["M1"], people["C2"]
    # A unit outside the admin's scope is 403; a member outside it is 404; a non-admin is 403.
    assert_problem(client.post(f"{API}/{m1.id}/roles", headers=ad, json={"role": "secretary", "org_unit": tree["city"].id}),
                   403, "forbidden")
    assert_problem(client.post(f"{API}/{c2.id}/roles", headers=ad, json={"role": "secretary", "org_unit": tree["b1"].id}),
                   404, "not_found")
    s1 = bearer(login(client, "S1").json["access_token"])
    assert_problem(client.post(f"{API}/{m1.id}/roles", headers=s1, json={"role": "secretary", "org_unit": tree["b1"].id}),
                   403, "forbidden")
    assert client.post(f"{API}/{m1.id}/roles", headers=ad, json={"role": "secretary", "org_unit": tree["b1"].id}).status_code == 201
    # The city's only admin keeps the role; nobody takes back their own.
    a1 = bearer(login(client, "A1").json["access_token"])
    assert_problem(client.delete(f"{API}/{people['A1'].id}/roles?role=admin&org_unit={tree['city'].id}", headers=a1),
                   409, "cannot_revoke_self")
    body = assert_problem(client.delete(f"{API}/{people['A1'].id}/roles?role=admin&org_unit={tree['city'].id}", headers=ad,
                                        ), 403, "forbidden")
    member("A3", tree["b1"], name="Quản trị 3", roles=[("admin", tree["city"])])
    a3 = bearer(login(client, "A3").json["access_token"])
    assert client.delete(f"{API}/{people['A1'].id}/roles?role=admin&org_unit={tree['city'].id}", headers=a3).status_code == 204
    body = assert_problem(client.delete(f"{API}/{db.session.scalar(select(RoleGrant.member_id).where(RoleGrant.role == 'admin', RoleGrant.org_unit_id == tree['city'].id))}/roles?role=admin&org_unit={tree['city'].id}",
                                        headers=a1), 403, "forbidden")   # A1 is no admin any more


def test_the_console_member_page_grants_and_takes_back_with_errors_next_to_the_field(app, people, tree):
    admin = browser(app, "A1")
    m1 = people["M1"]
    page = assert_page(admin.get(f"/members/{m1.id}?unit_q=dien bien"))
    assert "Đảng bộ phường Điện Biên" in page and 'name="org_unit"' in page
    before = table_counts()
    bad = post(admin, f"/members/{m1.id}/roles", {"role": "", "org_unit": ""})
    text = assert_page(bad, 422)
    assert 'id="role-error">Hãy chọn vai trò.' in text and 'id="unit-error">Hãy chọn đơn vị.' in text
    text = assert_page(post(admin, f"/members/{m1.id}/roles", {"role": "secretary", "org_unit": "99999"}), 422)
    assert 'id="unit-error">Không có đơn vị này.' in text
    assert table_counts() == before
    # Without the CSRF token: refused, nothing written.
    r = admin.post(f"/members/{m1.id}/roles", data={"role": "secretary", "org_unit": tree["b1"].id})
    assert r.status_code == 400 and held(m1) == set()
    r = post(admin, f"/members/{m1.id}/roles", {"role": "secretary", "org_unit": tree["b1"].id})
    assert r.status_code == 303
    text = assert_page(admin.get(r.headers["Location"]))
    assert "Đã phân quyền." in text and "Bí thư" in text and held(m1) == {("secretary", "HN.BD.DB.1")}
    r = post(admin, f"/members/{m1.id}/roles/revoke", {"role": "secretary", "org_unit": tree["b1"].id})
    assert "Đã thu hồi vai trò." in assert_page(admin.get(r.headers["Location"])) and held(m1) == set()
    # The last admin is kept, with the reason shown.
    r = post(admin, f"/members/{people['A1'].id}/roles/revoke", {"role": "admin", "org_unit": tree["city"].id})
    assert "không thể tự thu hồi" in assert_page(admin.get(r.headers["Location"]))
    assert ("admin", "HN") in held(people["A1"])
    # Others: 403 (not an admin).
    assert_page(post(browser(app, "S1"), f"/members/{m1.id}/roles", {"role": "secretary", "org_unit": tree["b1"].id}), 403)
    assert held(m1) == set()
