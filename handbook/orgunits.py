"""The organisation tree: city → upper → grassroots → (sub) → branch.

Each unit stores a materialised path of its ancestors' ids ('/1/7/93/'), so "the subtree of U" is one
index range scan: path >= U.path AND path < U.path with its last '/' bumped to '0'. The path column uses
the "C" collation on PostgreSQL so that the range is byte-ordered whatever the database locale.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, and_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from handbook.extensions import db
from handbook.timeutil import UTCDateTime, utcnow


class UnitKind(str, enum.Enum):
    CITY = "city"            # Thành ủy
    UPPER = "upper"          # quận/huyện/thị ủy, đảng ủy khối (đảng bộ trực thuộc)
    GRASSROOTS = "grassroots"  # đảng bộ cơ sở, or chi bộ cơ sở (holds members itself)
    SUB = "sub"              # đảng bộ bộ phận
    BRANCH = "branch"        # chi bộ


# Which kinds a unit of each kind may sit under (None: the root).
ALLOWED_PARENTS: dict[UnitKind, set[UnitKind | None]] = {
    UnitKind.CITY: {None},
    UnitKind.UPPER: {UnitKind.CITY},
    UnitKind.GRASSROOTS: {UnitKind.UPPER, UnitKind.CITY},
    UnitKind.SUB: {UnitKind.GRASSROOTS},
    UnitKind.BRANCH: {UnitKind.GRASSROOTS, UnitKind.SUB},
}

PathString = String(512).with_variant(String(512, collation="C"), "postgresql")


class OrgUnit(db.Model):
    __tablename__ = "org_units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"), index=True)
    path: Mapped[str] = mapped_column(PathString)
    depth: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # updated_at is indexed for the meeting roll-up's version of the tree (content/meetings.py: _tree_index).
    __table_args__ = (Index("ix_org_units_path", "path", unique=True), Index("ix_org_units_updated_at", "updated_at"))

    def brief(self) -> dict:
        return {"id": self.id, "code": self.code, "name": self.name, "kind": self.kind}

    @property
    def ancestor_ids(self) -> list[int]:
        """Ids from the root down to the parent."""
        return [int(part) for part in self.path.strip("/").split("/")[:-1]]

    def contains(self, other: OrgUnit) -> bool:
        """True when `other` is this unit or inside its subtree."""
        return other.path.startswith(self.path)


def path_upper_bound(path: str) -> str:
    """The smallest string above every path in the subtree rooted at `path` ('/1/7/' → '/1/70')."""
    return path[:-1] + "0"


def in_subtree(path_column, root_path: str):
    """SQL condition: `path_column` lies in the subtree rooted at `root_path` (root included)."""
    return and_(path_column >= root_path, path_column < path_upper_bound(root_path))


def subtree_of(unit: OrgUnit):
    return select(OrgUnit).where(in_subtree(OrgUnit.path, unit.path)).order_by(OrgUnit.path)


def ancestors_of(unit: OrgUnit) -> list[OrgUnit]:
    """Ancestors, root first (one query)."""
    ids = unit.ancestor_ids
    if not ids:
        return []
    rows = {u.id: u for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def holds_members(kind: str, has_children: bool) -> bool:
    """A branch holds members; so does a grassroots unit with no units under it (chi bộ cơ sở)."""
    return kind == UnitKind.BRANCH.value or (kind == UnitKind.GRASSROOTS.value and not has_children)


def has_children(unit_id: int) -> bool:
    return db.session.scalar(select(OrgUnit.id).where(OrgUnit.parent_id == unit_id).limit(1)) is not None


def recompute_paths(changed_ids: Iterable[int] | None = None) -> list[int]:
    """Recompute `path` and `depth` for the whole tree from `parent_id`; returns the ids whose path changed.

    Loads (id, parent_id, path) only: about 25,000 rows for Hanoi, 300,000 nationwide. Callers have
    already rejected cycles, so every unit reaches a root.
    """
    rows = db.session.execute(select(OrgUnit.id, OrgUnit.parent_id, OrgUnit.path, OrgUnit.depth)).all()
    parent = {r.id: r.parent_id for r in rows}
    current = {r.id: (r.path, r.depth) for r in rows}
    computed: dict[int, tuple[str, int]] = {}

    def resolve(uid: int) -> tuple[str, int]:
        chain = []
        node: int | None = uid
        while node is not None and node not in computed:
            chain.append(node)
            node = parent[node]
        base_path, base_depth = computed[node] if node is not None else ("/", -1)
        for nid in reversed(chain):
            base_path, base_depth = f"{base_path}{nid}/", base_depth + 1
            computed[nid] = (base_path, base_depth)
        return computed[uid]

    changes = []
    for uid in parent:
        path, depth = resolve(uid)
        if current[uid] != (path, depth):
            changes.append({"id": uid, "path": path, "depth": depth})
    # Move changed rows to temporary unique paths first so that swapping paths never collides.
    if changes:
        db.session.execute(
            update(OrgUnit), [{"id": c["id"], "path": f"~tmp/{c['id']}"} for c in changes]
        )
        db.session.execute(update(OrgUnit), changes)
    return [c["id"] for c in changes]
