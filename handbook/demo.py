"""Demo data: a Hanoi-shaped organisation tree with N members, deterministic for a given seed.

At N = 440,000 the tree has the shape of the real city (DESIGN.md): 1 city, 50 upper units (the 30
districts and towns plus 20 blocs), about 2,300 grassroots organisations and about 22,000 branches of
about 20 members each. Smaller N scales everything down. Rows are built as plain tuples in Python with
explicit ids (so that materialised paths are known before inserting) and written in bulk: COPY on
PostgreSQL, chunked executemany on SQLite; never one ORM object per member. One transaction.

Every demo member has the password `DEMO_PASSWORD`, hashed once. The first four card numbers are the
demo accounts that `demo_logins()` prints:

    01000001  the city board: admin and publisher over the city (a branch of the city agencies bloc)
    01000002  a district committee member: committee over Quận ủy Ba Đình
    01000003  a branch secretary: secretary over a branch in Ba Đình
    01000004  an ordinary member of that same branch

Every other branch (and chi bộ cơ sở) gets a secretary, its first member; every grassroots unit gets
one committee member.

Documents (Chỉ thị 24-CT/TU of 7/8/2023 on discipline and responsibility, Chỉ thị 05-CT/TW, a district
plan, a study series) are added by content.demo.load_demo_documents, which the demo command runs next.
"""
from __future__ import annotations

import math
import random
import time
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import click
from sqlalchemy import insert, select, text

from handbook.extensions import db
from handbook.members import Member, RoleGrant
from handbook.orgunits import OrgUnit, UnitKind

DEMO_PASSWORD = "demo1234"

# Card number → label, in the order demo_logins() prints them.
DEMO_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("01000001", "Board (admin, publisher)"),
    ("01000002", "District committee"),
    ("01000003", "Branch secretary"),
    ("01000004", "Member"),
)

CITY_CODE = "HN"
CITY_NAME = "Thành ủy Hà Nội"

# Full scale (DESIGN.md): members per grassroots unit and per member-holding unit.
MEMBERS_PER_GRASSROOTS = 191      # 440,000 / 2,300
MEMBERS_PER_HOLDING_UNIT = 20     # branches and chi bộ cơ sở
CHI_BO_CO_SO_SHARE = 0.10         # grassroots units that hold members themselves
SUB_SHARE = 0.03                  # grassroots units with đảng bộ bộ phận
MIN_BRANCH, MAX_BRANCH = 5, 60
CHUNK = 5000


class DemoExists(Exception):
    """The database already holds org units; the demo is only loaded into an empty database."""


def _n(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _nl(values: Iterable[str]) -> list[str]:
    return [_n(v) for v in values]


# --- upper units -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Upper:
    code: str
    name: str
    weight: float        # share of grassroots units
    place: str = ""      # "quận Ba Đình" (districts only)
    flavour: str = ""    # blocs: what their grassroots units are
    wards: str = ""      # districts: "p:A|B;x:C|D;tt:E"


_DISTRICT_KIND = {"Quận": ("Quận ủy", "quận"), "Thị xã": ("Thị ủy", "thị xã"), "Huyện": ("Huyện ủy", "huyện")}

# (code, kind, name, weight, wards/communes/towns as "p:...;x:...;tt:...")
_DISTRICTS_RAW = [
    ("BD", "Quận", "Ba Đình", 1.3, "p:Cống Vị|Điện Biên|Đội Cấn|Giảng Võ|Kim Mã|Liễu Giai|Ngọc Hà|Ngọc Khánh|"
     "Nguyễn Trung Trực|Phúc Xá|Quán Thánh|Thành Công|Trúc Bạch|Vĩnh Phúc"),
    ("HK", "Quận", "Hoàn Kiếm", 1.0, "p:Chương Dương|Cửa Đông|Cửa Nam|Đồng Xuân|Hàng Bạc|Hàng Bài|Hàng Bồ|"
     "Hàng Bông|Hàng Buồm|Hàng Đào|Hàng Gai|Hàng Mã|Hàng Trống|Lý Thái Tổ|Phan Chu Trinh|Phúc Tân|"
     "Trần Hưng Đạo|Tràng Tiền"),
    ("TH", "Quận", "Tây Hồ", 0.6, "p:Bưởi|Nhật Tân|Phú Thượng|Quảng An|Thụy Khuê|Tứ Liên|Xuân La|Yên Phụ"),
    ("LB", "Quận", "Long Biên", 1.1, "p:Bồ Đề|Cự Khối|Đức Giang|Gia Thụy|Giang Biên|Long Biên|Ngọc Lâm|"
     "Ngọc Thụy|Phúc Đồng|Phúc Lợi|Sài Đồng|Thạch Bàn|Thượng Thanh|Việt Hưng"),
    ("CG", "Quận", "Cầu Giấy", 0.9, "p:Dịch Vọng|Dịch Vọng Hậu|Mai Dịch|Nghĩa Đô|Nghĩa Tân|Quan Hoa|"
     "Trung Hòa|Yên Hòa"),
    ("DD", "Quận", "Đống Đa", 1.5, "p:Cát Linh|Hàng Bột|Khâm Thiên|Khương Thượng|Kim Liên|Láng Hạ|"
     "Láng Thượng|Nam Đồng|Ngã Tư Sở|Ô Chợ Dừa|Phương Liên|Phương Mai|Quang Trung|Quốc Tử Giám|"
     "Thịnh Quang|Thổ Quan|Trung Liệt|Trung Phụng|Trung Tự|Văn Chương|Văn Miếu"),
    ("HBT", "Quận", "Hai Bà Trưng", 1.3, "p:Bách Khoa|Bạch Đằng|Bạch Mai|Bùi Thị Xuân|Cầu Dền|Đống Mác|"
     "Đồng Nhân|Đồng Tâm|Lê Đại Hành|Minh Khai|Ngô Thì Nhậm|Nguyễn Du|Phạm Đình Hổ|Phố Huế|Quỳnh Lôi|"
     "Quỳnh Mai|Thanh Lương|Thanh Nhàn|Trương Định|Vĩnh Tuy"),
    ("HM", "Quận", "Hoàng Mai", 1.2, "p:Đại Kim|Định Công|Giáp Bát|Hoàng Liệt|Hoàng Văn Thụ|Lĩnh Nam|"
     "Mai Động|Tân Mai|Thanh Trì|Thịnh Liệt|Trần Phú|Tương Mai|Vĩnh Hưng|Yên Sở"),
    ("TX", "Quận", "Thanh Xuân", 0.9, "p:Hạ Đình|Khương Đình|Khương Mai|Khương Trung|Kim Giang|Nhân Chính|"
     "Phương Liệt|Thanh Xuân Bắc|Thanh Xuân Nam|Thanh Xuân Trung|Thượng Đình"),
    ("NTL", "Quận", "Nam Từ Liêm", 0.8, "p:Cầu Diễn|Đại Mỗ|Mễ Trì|Mỹ Đình 1|Mỹ Đình 2|Phú Đô|Phương Canh|"
     "Tây Mỗ|Trung Văn|Xuân Phương"),
    ("BTL", "Quận", "Bắc Từ Liêm", 0.9, "p:Cổ Nhuế 1|Cổ Nhuế 2|Đông Ngạc|Đức Thắng|Liên Mạc|Minh Khai|"
     "Phú Diễn|Phúc Diễn|Tây Tựu|Thượng Cát|Thụy Phương|Xuân Đỉnh|Xuân Tảo"),
    ("HD", "Quận", "Hà Đông", 1.2, "p:Biên Giang|Dương Nội|Đồng Mai|Hà Cầu|Kiến Hưng|La Khê|Mộ Lao|"
     "Nguyễn Trãi|Phú La|Phú Lãm|Phú Lương|Phúc La|Quang Trung|Vạn Phúc|Văn Quán|Yên Nghĩa|Yết Kiêu"),
    ("ST", "Thị xã", "Sơn Tây", 0.6, "p:Lê Lợi|Ngô Quyền|Phú Thịnh|Quang Trung|Sơn Lộc|Trung Hưng|"
     "Trung Sơn Trầm|Viên Sơn|Xuân Khanh;x:Cổ Đông|Đường Lâm|Kim Sơn|Sơn Đông|Thanh Mỹ|Xuân Sơn"),
    ("BV", "Huyện", "Ba Vì", 1.1, "tt:Tây Đằng;x:Ba Trại|Ba Vì|Cẩm Lĩnh|Cam Thượng|Châu Sơn|Chu Minh|Cổ Đô|"
     "Đông Quang|Đồng Thái|Khánh Thượng|Minh Châu|Minh Quang|Phong Vân|Phú Châu|Phú Cường|Phú Đông|"
     "Phú Phương|Phú Sơn|Sơn Đà|Tản Hồng|Tản Lĩnh|Thái Hòa|Thuần Mỹ|Thụy An|Tiên Phong|Tòng Bạt|Vân Hòa|"
     "Vạn Thắng|Vật Lại|Yên Bài"),
    ("PT", "Huyện", "Phúc Thọ", 0.7, "tt:Phúc Thọ;x:Hát Môn|Hiệp Thuận|Liên Hiệp|Long Xuyên|Ngọc Tảo|"
     "Phúc Hòa|Phụng Thượng|Sen Phương|Tam Hiệp|Tam Thuấn|Thanh Đa|Thọ Lộc|Thượng Cốc|Tích Giang|"
     "Trạch Mỹ Lộc|Vân Hà|Vân Nam|Vân Phúc|Võng Xuyên|Xuân Đình"),
    ("DP", "Huyện", "Đan Phượng", 0.6, "tt:Phùng;x:Đan Phượng|Đồng Tháp|Hạ Mỗ|Hồng Hà|Liên Hà|Liên Hồng|"
     "Liên Trung|Phương Đình|Song Phượng|Tân Hội|Tân Lập|Thọ An|Thọ Xuân|Thượng Mỗ|Trung Châu"),
    ("HDU", "Huyện", "Hoài Đức", 0.8, "tt:Trạm Trôi;x:An Khánh|An Thượng|Cát Quế|Di Trạch|Dương Liễu|Đắc Sở|"
     "Đông La|Đức Giang|Đức Thượng|Kim Chung|La Phù|Lại Yên|Minh Khai|Song Phương|Sơn Đồng|Tiền Yên|"
     "Vân Canh|Vân Côn|Yên Sở"),
    ("QO", "Huyện", "Quốc Oai", 0.7, "tt:Quốc Oai;x:Cấn Hữu|Cộng Hòa|Đại Thành|Đồng Quang|Đông Xuân|Đông Yên|"
     "Hòa Thạch|Liệp Tuyết|Nghĩa Hương|Ngọc Liệp|Ngọc Mỹ|Phú Cát|Phú Mãn|Phượng Cách|Sài Sơn|Tân Hòa|"
     "Tân Phú|Thạch Thán|Tuyết Nghĩa|Yên Sơn"),
    ("TTH", "Huyện", "Thạch Thất", 0.7, "tt:Liên Quan;x:Bình Phú|Bình Yên|Canh Nậu|Cẩm Yên|Cần Kiệm|Chàng Sơn|"
     "Đại Đồng|Dị Nậu|Đồng Trúc|Hạ Bằng|Hương Ngải|Hữu Bằng|Kim Quan|Lại Thượng|Phú Kim|Phùng Xá|Tân Xã|"
     "Thạch Hòa|Thạch Xá|Tiến Xuân|Yên Bình|Yên Trung"),
    ("CM", "Huyện", "Chương Mỹ", 1.1, "tt:Chúc Sơn|Xuân Mai;x:Đại Yên|Đông Phương Yên|Đông Sơn|Đồng Lạc|"
     "Đồng Phú|Hòa Chính|Hoàng Diệu|Hoàng Văn Thụ|Hồng Phong|Hợp Đồng|Hữu Văn|Lam Điền|Mỹ Lương|"
     "Nam Phương Tiến|Ngọc Hòa|Phú Nam An|Phú Nghĩa|Phụng Châu|Quảng Bị|Tân Tiến|Thanh Bình|Thụy Hương|"
     "Thủy Xuân Tiên|Thượng Vực|Tiên Phương|Tốt Động|Trần Phú|Trung Hòa|Trường Yên|Văn Võ"),
    ("TO", "Huyện", "Thanh Oai", 0.8, "tt:Kim Bài;x:Bích Hòa|Bình Minh|Cao Dương|Cao Viên|Cự Khê|Dân Hòa|"
     "Đỗ Động|Hồng Dương|Kim An|Kim Thư|Liên Châu|Mỹ Hưng|Phương Trung|Tam Hưng|Tân Ước|Thanh Cao|"
     "Thanh Mai|Thanh Thùy|Thanh Văn|Xuân Dương"),
    ("TTI", "Huyện", "Thường Tín", 0.9, "tt:Thường Tín;x:Chương Dương|Dũng Tiến|Duyên Thái|Hà Hồi|Hiền Giang|"
     "Hòa Bình|Hồng Vân|Khánh Hà|Lê Lợi|Liên Phương|Minh Cường|Nghiêm Xuyên|Nguyễn Trãi|Nhị Khê|Ninh Sở|"
     "Quất Động|Tân Minh|Thắng Lợi|Thống Nhất|Thư Phú|Tiền Phong|Tô Hiệu|Tự Nhiên|Vạn Điểm|Văn Bình|"
     "Văn Phú|Văn Tự|Vân Tảo"),
    ("PX", "Huyện", "Phú Xuyên", 0.8, "tt:Phú Xuyên|Phú Minh;x:Bạch Hạ|Châu Can|Chuyên Mỹ|Đại Thắng|"
     "Đại Xuyên|Hoàng Long|Hồng Minh|Hồng Thái|Khai Thái|Minh Tân|Nam Phong|Nam Tiến|Nam Triều|Phú Túc|"
     "Phú Yên|Phúc Tiến|Phượng Dực|Quang Lãng|Quang Trung|Sơn Hà|Tân Dân|Tri Thủy|Tri Trung|Văn Hoàng|"
     "Vân Từ"),
    ("UH", "Huyện", "Ứng Hòa", 0.8, "tt:Vân Đình;x:Cao Thành|Đại Cường|Đại Hùng|Đội Bình|Đông Lỗ|Đồng Tân|"
     "Đồng Tiến|Hòa Lâm|Hòa Nam|Hòa Phú|Hoa Sơn|Hòa Xá|Hồng Quang|Kim Đường|Liên Bạt|Lưu Hoàng|Minh Đức|"
     "Phù Lưu|Phương Tú|Quảng Phú Cầu|Sơn Công|Tảo Dương Văn|Trầm Lộng|Trung Tú|Trường Thịnh|Vạn Thái|"
     "Viên An|Viên Nội"),
    ("MD", "Huyện", "Mỹ Đức", 0.7, "tt:Đại Nghĩa;x:An Mỹ|An Phú|An Tiến|Bột Xuyên|Đại Hưng|Đốc Tín|Đồng Tâm|"
     "Hồng Sơn|Hợp Thanh|Hợp Tiến|Hùng Tiến|Hương Sơn|Lê Thanh|Mỹ Thành|Phù Lưu Tế|Phúc Lâm|Phùng Xá|"
     "Thượng Lâm|Tuy Lai|Vạn Kim|Xuy Xá"),
    ("TTR", "Huyện", "Thanh Trì", 0.8, "tt:Văn Điển;x:Đại Áng|Đông Mỹ|Duyên Hà|Hữu Hòa|Liên Ninh|Ngọc Hồi|"
     "Ngũ Hiệp|Tả Thanh Oai|Tam Hiệp|Tân Triều|Thanh Liệt|Tứ Hiệp|Vạn Phúc|Vĩnh Quỳnh|Yên Mỹ"),
    ("GL", "Huyện", "Gia Lâm", 0.9, "tt:Trâu Quỳ|Yên Viên;x:Bát Tràng|Cổ Bi|Đa Tốn|Đặng Xá|Đình Xuyên|Đông Dư|"
     "Dương Hà|Dương Quang|Dương Xá|Kiêu Kỵ|Kim Lan|Kim Sơn|Lệ Chi|Ninh Hiệp|Phù Đổng|Phú Thị|Trung Mầu|"
     "Văn Đức|Yên Thường|Yên Viên"),
    ("DA", "Huyện", "Đông Anh", 1.1, "tt:Đông Anh;x:Bắc Hồng|Cổ Loa|Dục Tú|Đại Mạch|Đông Hội|Hải Bối|Kim Chung|"
     "Kim Nỗ|Liên Hà|Mai Lâm|Nam Hồng|Nguyên Khê|Tàm Xá|Thụy Lâm|Tiên Dương|Uy Nỗ|Vân Hà|Vân Nội|"
     "Việt Hùng|Vĩnh Ngọc|Võng La|Xuân Canh|Xuân Nộn"),
    ("SS", "Huyện", "Sóc Sơn", 1.0, "tt:Sóc Sơn;x:Bắc Phú|Bắc Sơn|Đông Xuân|Đức Hòa|Hiền Ninh|Hồng Kỳ|Kim Lũ|"
     "Mai Đình|Minh Phú|Minh Trí|Nam Sơn|Phú Cường|Phù Linh|Phù Lỗ|Phú Minh|Quang Tiến|Tân Dân|Tân Hưng|"
     "Tân Minh|Thanh Xuân|Tiên Dược|Trung Giã|Việt Long|Xuân Giang|Xuân Thu"),
    ("ML", "Huyện", "Mê Linh", 0.7, "tt:Chi Đông|Quang Minh;x:Chu Phan|Đại Thịnh|Hoàng Kim|Kim Hoa|Liên Mạc|"
     "Mê Linh|Tam Đồng|Thạch Đà|Thanh Lâm|Tiền Phong|Tiến Thắng|Tiến Thịnh|Tráng Việt|Tự Lập|Văn Khê|"
     "Vạn Yên"),
]

DISTRICTS: list[_Upper] = [
    _Upper(code=f"{CITY_CODE}.{code}", name=_n(f"{_DISTRICT_KIND[kind][0]} {name}"), weight=weight,
           place=_n(f"{_DISTRICT_KIND[kind][1]} {name}"), wards=_n(wards))
    for code, kind, name, weight, wards in _DISTRICTS_RAW
]

CITY_BLOC_CODE = f"{CITY_CODE}.KCQ"

BLOCS: list[_Upper] = [
    _Upper(f"{CITY_CODE}.{code}", _n(name), weight, flavour=flavour)
    for code, name, weight, flavour in [
        ("KCQ", "Đảng ủy Khối các cơ quan Thành phố", 1.2, "city_agency"),
        ("KDN", "Đảng ủy Khối Doanh nghiệp Thành phố", 1.6, "company"),
        ("KDH", "Đảng ủy Khối các trường đại học, cao đẳng Hà Nội", 0.9, "university"),
        ("CA", "Đảng bộ Công an Thành phố", 1.3, "police"),
        ("QS", "Đảng bộ Quân sự Thành phố", 0.5, "military"),
        ("SYT", "Đảng bộ Sở Y tế", 0.7, "hospital"),
        ("SGD", "Đảng bộ Sở Giáo dục và Đào tạo", 0.6, "high_school"),
        ("EVN", "Đảng bộ Tổng Công ty Điện lực Thành phố Hà Nội", 0.3, "power"),
        ("TRANSERCO", "Đảng bộ Tổng Công ty Vận tải Hà Nội", 0.2, "transport"),
        ("HANOITOURIST", "Đảng bộ Tổng Công ty Du lịch Hà Nội", 0.15, "company"),
        ("HAPRO", "Đảng bộ Tổng Công ty Thương mại Hà Nội", 0.15, "company"),
        ("HANDICO", "Đảng bộ Tổng Công ty Đầu tư và Phát triển Nhà Hà Nội", 0.15, "company"),
        ("NSHN", "Đảng bộ Công ty TNHH MTV Nước sạch Hà Nội", 0.15, "water"),
        ("TNHN", "Đảng bộ Công ty TNHH MTV Thoát nước Hà Nội", 0.1, "water"),
        ("URENCO", "Đảng bộ Công ty TNHH MTV Môi trường Đô thị Hà Nội", 0.15, "company"),
        ("DSHN", "Đảng bộ Công ty TNHH MTV Đường sắt Hà Nội", 0.1, "transport"),
        ("PTTH", "Đảng bộ Đài Phát thanh và Truyền hình Hà Nội", 0.1, "media"),
        ("CT", "Đảng bộ Cục Thuế Thành phố Hà Nội", 0.3, "tax"),
        ("HQ", "Đảng bộ Cục Hải quan Thành phố Hà Nội", 0.15, "customs"),
        ("NHNN", "Đảng bộ Ngân hàng Nhà nước Chi nhánh Thành phố Hà Nội", 0.1, "bank"),
    ]
]

# Which upper units a small demo gets first (Ba Đình and the city agencies bloc are always there: the
# demo accounts live in them); the tree lists the chosen ones in the canonical order above.
_PRIORITY = ["BD", "KCQ", "HK", "DD", "KDN", "CG", "HBT", "CA", "LB", "KDH", "TH", "HM", "TX", "QS", "HD",
             "SYT", "DA", "NTL", "BTL", "SGD", "GL", "ST", "TTR", "BV", "EVN", "CM", "SS", "TRANSERCO"]


def _choose_uppers(count: int) -> list[_Upper]:
    canonical = DISTRICTS + BLOCS
    by_code = {u.code: u for u in canonical}
    order = [by_code[f"{CITY_CODE}.{c}"] for c in _PRIORITY]
    order += [u for u in canonical if u not in order]
    chosen = set(order[:count])
    return [u for u in canonical if u in chosen]


# --- name pools ------------------------------------------------------------------------------------

_HEROES = _nl([
    "Nguyễn Du", "Lê Quý Đôn", "Chu Văn An", "Trần Phú", "Nguyễn Trãi", "Lê Lợi", "Quang Trung", "Kim Đồng",
    "Lý Thường Kiệt", "Trưng Vương", "Phan Huy Chú", "Phan Đình Phùng", "Nguyễn Trường Tộ", "Lê Hồng Phong",
    "Ngô Quyền", "Thăng Long", "Việt Đức", "Đoàn Thị Điểm", "Lý Tự Trọng", "Võ Thị Sáu", "Trần Quốc Toản",
    "Nguyễn Văn Cừ", "Tô Hiến Thành", "Hoàng Hoa Thám", "Lê Văn Tám", "Nguyễn Bỉnh Khiêm", "Trần Đăng Ninh",
    "Đinh Tiên Hoàng", "Lý Công Uẩn", "Phan Chu Trinh", "Hà Huy Tập", "Nguyễn Thị Minh Khai", "Lương Thế Vinh",
    "Trần Nhân Tông", "Nguyễn Tất Thành", "Ba Đình", "Đống Đa", "Thành Công", "Ngọc Lâm", "Bế Văn Đàn",
])
_KINDERGARTENS = _nl(["Hoa Sen", "Hoa Mai", "Hoa Hồng", "Sơn Ca", "Họa Mi", "Bằng Lăng", "Tuổi Hoa", "Ánh Dương",
                      "Hoa Sữa", "Sao Mai", "Hoa Ban", "Hoa Đào", "Bông Sen", "Hoa Thủy Tiên", "Búp Sen Hồng"])
_COMPANY_FORMS = _nl(["Công ty Cổ phần", "Công ty Cổ phần", "Công ty TNHH", "Công ty TNHH MTV", "Hợp tác xã"])
_COMPANY_FIELDS = _nl([
    "Xây dựng", "Đầu tư và Phát triển", "Thương mại", "Dịch vụ", "May", "Cơ khí", "Vận tải", "Dược phẩm", "In",
    "Điện tử", "Môi trường", "Kỹ thuật", "Bất động sản", "Thực phẩm", "Xuất nhập khẩu", "Sách và Thiết bị",
    "Tư vấn Thiết kế", "Công nghệ", "Giống cây trồng", "Bia", "Du lịch", "Đầu tư Xây dựng",
])
_COMPANY_BRANDS = _nl([
    "Hà Nội", "Thăng Long", "Hồng Hà", "Sông Hồng", "Đông Đô", "Hà Thành", "Tràng An", "Việt Hưng", "Long Biên",
    "Hòa Bình", "Thủ Đô", "Hồ Gươm", "Tây Hồ", "Kinh Đô", "Sông Đà", "Phú Thịnh", "An Phát", "Đại Việt",
    "Thành Công", "Ba Đình", "Đống Đa", "Hòa Phát", "Tân Long", "Minh Khai", "Hồng Quang", "Bắc Hà",
])
_CITY_AGENCIES = _nl([
    "Văn phòng Thành ủy", "Văn phòng Ủy ban nhân dân Thành phố", "Văn phòng Đoàn đại biểu Quốc hội và "
    "Hội đồng nhân dân Thành phố", "Sở Tài chính", "Sở Kế hoạch và Đầu tư", "Sở Xây dựng",
    "Sở Quy hoạch - Kiến trúc", "Sở Giao thông vận tải", "Sở Tài nguyên và Môi trường", "Sở Công Thương",
    "Sở Nông nghiệp và Phát triển nông thôn", "Sở Lao động - Thương binh và Xã hội", "Sở Văn hóa và Thể thao",
    "Sở Du lịch", "Sở Khoa học và Công nghệ", "Sở Thông tin và Truyền thông", "Sở Tư pháp", "Sở Nội vụ",
    "Sở Ngoại vụ", "Thanh tra Thành phố", "Ban Tổ chức Thành ủy", "Ban Tuyên giáo Thành ủy",
    "Ủy ban Kiểm tra Thành ủy", "Ban Dân vận Thành ủy", "Ban Nội chính Thành ủy", "Báo Hà Nội Mới",
    "Báo Kinh tế và Đô thị", "Ủy ban Mặt trận Tổ quốc Việt Nam Thành phố", "Thành đoàn Hà Nội",
    "Hội Liên hiệp Phụ nữ Thành phố", "Liên đoàn Lao động Thành phố", "Hội Nông dân Thành phố",
    "Hội Cựu chiến binh Thành phố", "Tòa án nhân dân Thành phố", "Viện Kiểm sát nhân dân Thành phố",
    "Cục Thi hành án dân sự Thành phố", "Ban Quản lý các khu công nghiệp và chế xuất",
    "Ban Quản lý dự án đầu tư xây dựng công trình giao thông", "Ban Quản lý dự án đầu tư xây dựng công trình "
    "dân dụng", "Bảo hiểm xã hội Thành phố", "Kho bạc Nhà nước Hà Nội", "Trường Đào tạo cán bộ Lê Hồng Phong",
    "Viện Nghiên cứu phát triển kinh tế - xã hội", "Trung tâm Phục vụ hành chính công Thành phố",
    "Chi cục Kiểm lâm", "Chi cục Thủy lợi", "Chi cục Chăn nuôi, Thủy sản và Thú y",
    "Chi cục Trồng trọt và Bảo vệ thực vật", "Chi cục Phát triển nông thôn", "Chi cục Văn thư - Lưu trữ",
    "Chi cục Dân số - Kế hoạch hóa gia đình", "Chi cục An toàn vệ sinh thực phẩm", "Chi cục Bảo vệ môi trường",
    "Chi cục Phòng, chống tệ nạn xã hội", "Chi cục Tiêu chuẩn Đo lường Chất lượng", "Chi cục Giám định xây dựng",
    "Trung tâm Xúc tiến Đầu tư, Thương mại, Du lịch", "Trung tâm Phát triển quỹ đất", "Trung tâm Dịch vụ việc làm",
    "Thư viện Hà Nội", "Bảo tàng Hà Nội", "Nhà hát Chèo Hà Nội", "Nhà hát Kịch Hà Nội", "Nhà hát Cải lương Hà Nội",
    "Nhà hát Múa rối Thăng Long", "Trung tâm Bảo tồn di sản Thăng Long - Hà Nội",
    "Trung tâm Hoạt động Văn hóa Khoa học Văn Miếu - Quốc Tử Giám", "Quỹ Đầu tư phát triển Thành phố",
    "Ban Quản lý đường sắt đô thị Hà Nội", "Liên minh Hợp tác xã Thành phố", "Hội Chữ thập đỏ Thành phố",
    "Liên hiệp các Hội Khoa học và Kỹ thuật Thành phố", "Ban Quản lý dự án đầu tư xây dựng công trình cấp nước, "
    "thoát nước và môi trường", "Ban Quản lý dự án đầu tư xây dựng công trình văn hóa - xã hội",
    "Ban Quản lý dự án đầu tư xây dựng công trình nông nghiệp và phát triển nông thôn", "Cục Thống kê Thành phố",
    "Cục Quản lý thị trường Hà Nội", "Trung tâm Bảo trợ xã hội số 1", "Trung tâm Bảo trợ xã hội số 2",
    "Trung tâm Bảo trợ xã hội số 3", "Trung tâm Nuôi dưỡng người già và trẻ tàn tật",
    "Trung tâm Điều hành giao thông đô thị", "Trung tâm Quản lý hạ tầng giao thông",
])
_DISTRICT_AGENCIES = _nl([
    "Cơ quan Ủy ban nhân dân {p}", "Cơ quan {u} - Mặt trận Tổ quốc - các đoàn thể {p}",
    "Phòng Giáo dục và Đào tạo {p}", "Phòng Tài chính - Kế hoạch {p}", "Phòng Tài nguyên và Môi trường {p}",
    "Phòng Văn hóa và Thông tin {p}", "Trung tâm Y tế {p}", "Ban Quản lý dự án đầu tư xây dựng {p}",
    "Trung tâm Văn hóa - Thông tin và Thể thao {p}", "Tòa án nhân dân {p}", "Viện Kiểm sát nhân dân {p}",
    "Chi cục Thi hành án dân sự {p}", "Bảo hiểm xã hội {p}", "Kho bạc Nhà nước {p}", "Ban Quản lý chợ {p}",
    "Đội Quản lý trật tự xây dựng đô thị {p}", "Trung tâm Giáo dục nghề nghiệp - Giáo dục thường xuyên {p}",
    "Phòng Quản lý đô thị {p}", "Phòng Lao động - Thương binh và Xã hội {p}", "Phòng Nội vụ {p}",
])
_HOSPITALS = _nl([
    "Bệnh viện Đa khoa Đống Đa", "Bệnh viện Thanh Nhàn", "Bệnh viện Đa khoa Xanh Pôn", "Bệnh viện Đa khoa Đức Giang",
    "Bệnh viện Đa khoa Hà Đông", "Bệnh viện Đa khoa Sơn Tây", "Bệnh viện Đa khoa Đông Anh",
    "Bệnh viện Đa khoa Sóc Sơn", "Bệnh viện Đa khoa Mê Linh", "Bệnh viện Đa khoa Vân Đình",
    "Bệnh viện Đa khoa Ba Vì", "Bệnh viện Đa khoa Thạch Thất", "Bệnh viện Đa khoa Hoài Đức",
    "Bệnh viện Đa khoa Đan Phượng", "Bệnh viện Đa khoa Thanh Oai", "Bệnh viện Đa khoa Chương Mỹ",
    "Bệnh viện Đa khoa Phú Xuyên", "Bệnh viện Đa khoa Mỹ Đức", "Bệnh viện Đa khoa Gia Lâm",
    "Bệnh viện Bắc Thăng Long", "Bệnh viện Tim Hà Nội", "Bệnh viện Phụ sản Hà Nội", "Bệnh viện Nhi Hà Nội",
    "Bệnh viện Ung bướu Hà Nội", "Bệnh viện Mắt Hà Nội", "Bệnh viện Thận Hà Nội", "Bệnh viện Phổi Hà Nội",
    "Bệnh viện Y học cổ truyền Hà Nội", "Bệnh viện Tâm thần Hà Nội", "Bệnh viện Da liễu Hà Nội",
    "Bệnh viện Đa khoa Hòe Nhai", "Bệnh viện Đa khoa Thanh Trì", "Trung tâm Cấp cứu 115 Hà Nội",
    "Trung tâm Kiểm soát bệnh tật Hà Nội", "Trường Cao đẳng Y tế Hà Nội", "Bệnh viện Đa khoa Hồng Ngọc",
])
_UNIVERSITIES = _nl([
    "Trường Đại học Bách khoa Hà Nội", "Trường Đại học Kinh tế Quốc dân", "Trường Đại học Xây dựng Hà Nội",
    "Trường Đại học Thủy lợi", "Trường Đại học Giao thông vận tải", "Trường Đại học Mỏ - Địa chất",
    "Trường Đại học Sư phạm Hà Nội", "Trường Đại học Luật Hà Nội", "Trường Đại học Ngoại thương",
    "Trường Đại học Thương mại", "Trường Đại học Công đoàn", "Trường Đại học Kiến trúc Hà Nội",
    "Trường Đại học Văn hóa Hà Nội", "Trường Đại học Lao động - Xã hội", "Trường Đại học Điện lực",
    "Trường Đại học Công nghiệp Hà Nội", "Trường Đại học Hà Nội", "Trường Đại học Mở Hà Nội",
    "Trường Đại học Y Hà Nội", "Trường Đại học Dược Hà Nội", "Trường Đại học Thủ đô Hà Nội",
    "Học viện Ngân hàng", "Học viện Tài chính", "Học viện Ngoại giao", "Học viện Báo chí và Tuyên truyền",
    "Trường Đại học Mỹ thuật Việt Nam", "Trường Đại học Sân khấu - Điện ảnh Hà Nội",
    "Trường Cao đẳng Sư phạm Trung ương", "Trường Cao đẳng Cộng đồng Hà Nội", "Trường Cao đẳng Điện tử - Điện lạnh "
    "Hà Nội", "Trường Cao đẳng Thương mại và Du lịch Hà Nội", "Trường Cao đẳng Nghệ thuật Hà Nội",
    "Trường Đại học Công nghệ Giao thông vận tải", "Trường Đại học Tài nguyên và Môi trường Hà Nội",
    "Trường Đại học Nội vụ Hà Nội", "Trường Đại học Sư phạm Nghệ thuật Trung ương",
    "Trường Đại học Sư phạm Thể dục Thể thao Hà Nội", "Trường Đại học Mỹ thuật Công nghiệp",
    "Trường Đại học Y tế Công cộng", "Học viện Y Dược học cổ truyền Việt Nam", "Học viện Quản lý Giáo dục",
    "Học viện Phụ nữ Việt Nam", "Học viện Thanh thiếu niên Việt Nam", "Trường Đại học Lâm nghiệp",
    "Học viện Nông nghiệp Việt Nam", "Trường Đại học Kinh tế - Kỹ thuật Công nghiệp",
    "Trường Đại học Công nghiệp Dệt May Hà Nội", "Học viện Âm nhạc Quốc gia Việt Nam",
    "Trường Cao đẳng Y tế Bạch Mai", "Trường Cao đẳng Công nghệ và Thương mại Hà Nội",
    "Trường Cao đẳng Xây dựng số 1", "Trường Cao đẳng Du lịch Hà Nội", "Trường Cao đẳng Cơ điện Hà Nội",
    "Trường Cao đẳng Nghề Công nghệ cao Hà Nội", "Trường Cao đẳng Sư phạm Hà Tây", "Trường Cao đẳng Y tế Hà Đông",
    "Trường Cao đẳng Thủy lợi Bắc Bộ", "Trường Cao đẳng Truyền hình", "Trường Cao đẳng Múa Việt Nam",
    "Trường Cao đẳng Giao thông vận tải Trung ương I", "Trường Cao đẳng Kinh tế Công nghiệp Hà Nội",
])
_POLICE = _nl([
    "Phòng Cảnh sát giao thông", "Phòng Cảnh sát phòng cháy, chữa cháy và cứu nạn, cứu hộ",
    "Phòng Cảnh sát hình sự", "Phòng Cảnh sát kinh tế", "Phòng Cảnh sát điều tra tội phạm về ma túy",
    "Phòng An ninh chính trị nội bộ", "Phòng An ninh kinh tế", "Phòng Quản lý xuất nhập cảnh",
    "Phòng Cảnh sát cơ động", "Phòng Tham mưu", "Phòng Tổ chức cán bộ", "Phòng Hậu cần", "Trại tạm giam số 1",
    "Phòng Cảnh sát quản lý hành chính về trật tự xã hội", "Phòng Kỹ thuật hình sự", "Trại tạm giam số 2",
    "Trung đoàn Cảnh sát cơ động", "Phòng Cảnh sát đường thủy", "Phòng Cảnh sát môi trường",
    "Phòng Cảnh sát điều tra tội phạm về tham nhũng, kinh tế, buôn lậu", "Phòng Hồ sơ nghiệp vụ",
    "Phòng An ninh đối ngoại", "Phòng An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao",
    "Phòng Cảnh sát thi hành án hình sự và hỗ trợ tư pháp", "Phòng Quản lý vũ khí, vật liệu nổ",
])
_MILITARY = _nl([
    "Cơ quan Bộ Chỉ huy Quân sự Thành phố", "Trung đoàn Bộ binh 692", "Trường Quân sự Thành phố",
    "Tiểu đoàn Thông tin", "Tiểu đoàn Công binh", "Kho Kỹ thuật Thành phố", "Đoàn An điều dưỡng",
])
_HIGH_SCHOOLS = _nl(["Trường THPT {h}", "Trường THPT {h}", "Trường THPT {h}",
                     "Trung tâm Giáo dục nghề nghiệp - Giáo dục thường xuyên {p}"])
_BLOC_TEMPLATES = {
    "power": _nl(["Công ty Điện lực {d}"]),
    "transport": _nl(["Xí nghiệp Xe buýt {b}", "Xí nghiệp Vận tải {b}", "Xí nghiệp Đầu máy {b}",
                      "Công ty Cổ phần Vận tải {b}"]),
    "water": _nl(["Xí nghiệp Nước sạch {d}", "Xí nghiệp Thoát nước số {k}"]),
    "tax": _nl(["Chi cục Thuế {p}", "Chi cục Thuế khu vực {d}"]),
    "customs": _nl(["Chi cục Hải quan {b}", "Chi cục Kiểm tra sau thông quan"]),
    "bank": _nl(["Phòng Tổng hợp và Kiểm soát nội bộ", "Phòng Quản lý ngoại hối", "Phòng Thanh tra, giám sát số {k}",
                 "Phòng Tiền tệ - Kho quỹ"]),
    "media": _nl(["Trung tâm Tin tức", "Trung tâm Sản xuất chương trình", "Ban Thời sự", "Ban Văn nghệ - Giải trí",
                  "Trung tâm Kỹ thuật - Truyền dẫn phát sóng", "Ban Biên tập Báo điện tử", "Văn phòng Đài",
                  "Trung tâm Phát thanh"]),
}

# Branch names by the flavour of their grassroots unit; '{n}' numbers them.
_BRANCH_DEPARTMENTS = {
    "agency": _nl(["Văn phòng", "Phòng Tổ chức cán bộ", "Phòng Kế hoạch - Tài chính", "Phòng Kế toán",
                   "Phòng Thanh tra", "Phòng Pháp chế", "Phòng Quản lý chuyên ngành", "Phòng Tổng hợp",
                   "Phòng Hành chính - Quản trị", "Trung tâm Thông tin"]),
    "company": _nl(["Phòng Kế toán", "Phòng Kinh doanh", "Phòng Kỹ thuật", "Phòng Tổ chức - Hành chính",
                    "Phòng Kế hoạch - Vật tư", "Phân xưởng số 1", "Phân xưởng số 2", "Đội Thi công số 1",
                    "Xí nghiệp số 1", "Xí nghiệp số 2", "Đội Xe", "Phòng Dự án"]),
    "school": _nl(["Tổ Toán - Tin", "Tổ Ngữ văn", "Tổ Khoa học tự nhiên", "Tổ Khoa học xã hội", "Tổ Ngoại ngữ",
                   "Tổ Văn phòng", "Tổ Thể dục - Nghệ thuật"]),
    "hospital": _nl(["Khoa Nội", "Khoa Ngoại", "Khoa Sản", "Khoa Nhi", "Khoa Hồi sức cấp cứu", "Khoa Xét nghiệm",
                     "Khoa Chẩn đoán hình ảnh", "Khoa Dược", "Phòng Kế hoạch tổng hợp", "Phòng Điều dưỡng",
                     "Phòng Tổ chức cán bộ", "Phòng Tài chính - Kế toán", "Khoa Khám bệnh", "Khoa Truyền nhiễm",
                     "Khoa Mắt", "Khoa Tai Mũi Họng", "Khoa Răng Hàm Mặt", "Khoa Y học cổ truyền",
                     "Khoa Phục hồi chức năng", "Khoa Gây mê hồi sức"]),
    "university": _nl(["Khoa Công nghệ thông tin", "Khoa Kinh tế", "Khoa Luật", "Khoa Ngoại ngữ", "Khoa Toán",
                       "Khoa Vật lý", "Khoa Hóa học", "Khoa Xây dựng", "Khoa Cơ khí", "Khoa Điện",
                       "Khoa Môi trường", "Khoa Quản trị kinh doanh", "Khoa Kế toán", "Khoa Lý luận chính trị",
                       "Phòng Đào tạo", "Phòng Công tác sinh viên", "Phòng Tổ chức cán bộ", "Thư viện"]),
    "police": _nl(["Đội Tổng hợp", "Đội Cảnh sát điều tra tội phạm về trật tự xã hội",
                   "Đội Cảnh sát giao thông - Trật tự", "Đội An ninh", "Đội Cảnh sát kinh tế",
                   "Đội Cảnh sát quản lý hành chính về trật tự xã hội", "Đội Cảnh sát điều tra tội phạm về ma túy",
                   "Đội Cảnh sát phòng cháy, chữa cháy và cứu nạn, cứu hộ"]),
    "military": _nl(["Ban Tham mưu", "Ban Chính trị", "Ban Hậu cần - Kỹ thuật", "Đại đội 1", "Đại đội 2",
                     "Đại đội 3", "Tiểu đoàn 1", "Tiểu đoàn 2"]),
}
_BRANCH_FALLBACK = {
    "agency": "Chi bộ số {n}", "company": "Chi bộ Tổ sản xuất số {n}", "school": "Chi bộ Giáo viên số {n}",
    "hospital": "Chi bộ Khoa Lâm sàng số {n}", "university": "Chi bộ Sinh viên số {n}",
    "police": "Chi bộ Công an số {n}", "military": "Chi bộ Đại đội {n}",
}
_HAMLETS = _nl(["Đông", "Đoài", "Nam", "Bắc", "Thượng", "Trung", "Hạ", "Cựu", "Tân Lập", "Phú Mỹ", "An Thái",
                "Yên Nội", "Đông Xuân", "Kim Bông", "Cao Xá", "Ngọc Nội", "Lai Xá", "Đình", "Chùa", "Phú Xá",
                "Tiên Lữ", "Đồng Nhân", "Bến", "Vân Trì", "Hậu", "Tiền", "Gò", "Đồi", "Trại", "Bãi"])
_SUB_NAMES = {
    "ward": "Đảng bộ bộ phận Khu vực {n}", "commune": "Đảng bộ bộ phận Khu vực {n}",
    "company": "Đảng bộ bộ phận Xí nghiệp số {n}", "agency": "Đảng bộ bộ phận Chi cục số {n}",
    "hospital": "Đảng bộ bộ phận Khối {n}", "university": "Đảng bộ bộ phận Khoa số {n}",
    "police": "Đảng bộ bộ phận Phòng số {n}", "military": "Đảng bộ bộ phận Tiểu đoàn {n}",
    "school": "Đảng bộ bộ phận Khối {n}",
}
_HOSPITAL_BLOCKS = _nl(["Lâm sàng", "Cận lâm sàng", "Hành chính", "Ngoại", "Nội"])

# Branches per grassroots unit, relative, by flavour (a ward has many residential branches).
_BRANCH_WEIGHT = {"ward": 2.2, "commune": 2.0, "company": 0.6, "agency": 0.6, "school": 0.4, "hospital": 1.0,
                  "university": 1.5, "police": 1.0, "military": 0.8}

# Bloc flavour → (name pool key, branch flavour)
_BLOC_BRANCH_FLAVOUR = {
    "city_agency": "agency", "company": "company", "university": "university", "police": "police",
    "military": "military", "hospital": "hospital", "high_school": "school", "power": "company",
    "transport": "company", "water": "company", "tax": "agency", "customs": "agency", "bank": "agency",
    "media": "agency",
}


# --- people ----------------------------------------------------------------------------------------

_SURNAMES = [(_n(s), w) for s, w in [
    ("Nguyễn", 38.0), ("Trần", 11.0), ("Lê", 9.5), ("Phạm", 7.0), ("Hoàng", 5.0), ("Phan", 4.0), ("Vũ", 4.0),
    ("Đặng", 2.1), ("Bùi", 2.0), ("Đỗ", 2.0), ("Ngô", 1.3), ("Hồ", 1.2), ("Dương", 1.0), ("Đinh", 1.0),
    ("Đào", 1.0), ("Huỳnh", 0.6), ("Võ", 0.8), ("Trịnh", 0.8), ("Lý", 0.5), ("Lương", 0.5), ("Mai", 0.4),
    ("Tạ", 0.4), ("Phùng", 0.4), ("Lưu", 0.4), ("Cao", 0.5), ("Hà", 0.6), ("Chu", 0.3), ("Kiều", 0.3),
    ("Triệu", 0.3), ("Tô", 0.3), ("Nghiêm", 0.2), ("Quách", 0.2), ("Vương", 0.2), ("Khúc", 0.1),
    ("Doãn", 0.1), ("Thái", 0.2),
]]
_MALE_MIDDLE = [(_n(s), w) for s, w in [
    ("Văn", 25), ("Đức", 8), ("Minh", 8), ("Quang", 6), ("Hữu", 5), ("Thanh", 5), ("Công", 5), ("Xuân", 4),
    ("Đình", 4), ("Mạnh", 3), ("Tiến", 3), ("Trọng", 3), ("Ngọc", 3), ("Duy", 3), ("Việt", 3), ("Quốc", 3),
    ("Thế", 2), ("Huy", 2), ("Hoàng", 2), ("Bá", 2), ("Anh", 2), ("Trung", 2), ("Khắc", 1), ("Đăng", 1),
    ("Hồng", 1), ("Tuấn", 1), ("Kim", 1),
]]
_FEMALE_MIDDLE = [(_n(s), w) for s, w in [
    ("Thị", 40), ("Thu", 6), ("Ngọc", 6), ("Thanh", 6), ("Hồng", 5), ("Phương", 4), ("Minh", 4), ("Kim", 4),
    ("Thúy", 3), ("Bích", 3), ("Thùy", 3), ("Hải", 2), ("Lan", 2), ("Mai", 2), ("Diệu", 2), ("Quỳnh", 2),
    ("Khánh", 2), ("Hoài", 2), ("Vân", 1), ("Tuyết", 1), ("Mỹ", 1), ("Bảo", 1), ("Việt", 1),
]]
_FEMALE_SECOND_MIDDLE = _nl(["Thu", "Ngọc", "Thanh", "Hồng", "Minh", "Kim", "Bích", "Thúy", "Thùy", "Hải",
                             "Lan", "Mai", "Phương", "Diệu", "Quỳnh"])
_MALE_GIVEN = _nl([
    "An", "Bình", "Cường", "Dũng", "Hùng", "Hải", "Long", "Nam", "Sơn", "Tuấn", "Anh", "Bảo", "Chiến", "Công",
    "Cương", "Đạt", "Điệp", "Định", "Đông", "Đức", "Dương", "Duy", "Giang", "Hà", "Hiếu", "Hiển", "Hòa", "Hoàn",
    "Hoàng", "Học", "Hợp", "Huy", "Hưng", "Khải", "Khánh", "Khoa", "Kiên", "Lâm", "Lợi", "Lực", "Luân", "Mạnh",
    "Minh", "Nghĩa", "Ngọc", "Nhân", "Phong", "Phú", "Phúc", "Phương", "Quân", "Quang", "Quý", "Quyết", "Tài",
    "Tâm", "Tân", "Thắng", "Thanh", "Thành", "Thịnh", "Thông", "Thuận", "Tiến", "Toàn", "Trung", "Trường", "Tú",
    "Tùng", "Việt", "Vinh", "Vũ", "Khôi", "Lộc", "Hậu", "Hiệp", "Kiệt", "Thái", "Tuyên", "Thạch", "Quyền",
])
_FEMALE_GIVEN = _nl([
    "Anh", "Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh", "Mai", "Nga", "Thảo", "Trang", "Yến", "Huyền", "Hằng",
    "Hiền", "Hòa", "Hường", "Nhung", "Oanh", "Phương", "Quyên", "Tâm", "Thanh", "Thủy", "Thúy", "Trâm",
    "Tuyết", "Vân", "Dung", "Giang", "Hải", "Hậu", "Hồng", "Liên", "Loan", "Ly", "My", "Ngân", "Ngọc", "Nhàn",
    "Nhi", "Quỳnh", "Thơ", "Thu", "Thư", "Uyên", "Vy", "Xuân", "Chi", "Châu", "Diệp", "Duyên", "Hiên", "Lụa",
    "Minh", "Nguyệt", "Phượng", "Sen", "Tình", "Vui",
])
_MALE_SHARE = 0.55

# Mobile prefixes of Viettel, VinaPhone and MobiFone (10-digit numbers).
_PHONE_PREFIXES = ["096", "097", "098", "086", "032", "033", "034", "035", "036", "037", "038", "039", "091",
                   "094", "088", "081", "082", "083", "084", "085", "090", "093", "089", "070", "076", "077",
                   "078", "079"]


def card_number(seq: int) -> str:
    """Hanoi party card numbers: '01' and the sequence number (01000001, 01000002, ...)."""
    return f"01{seq:06d}"


# --- the tree --------------------------------------------------------------------------------------

@dataclass(eq=False, slots=True)
class _Unit:
    code: str
    name: str
    kind: str
    parent: _Unit | None
    flavour: str = ""
    children: list[_Unit] = field(default_factory=list)
    id: int = 0
    path: str = ""
    depth: int = 0
    size: int = 0                                   # members, for units that hold them
    members: list[int] = field(default_factory=list)

    def add(self, child: _Unit) -> _Unit:
        self.children.append(child)
        return child


def _apportion(total: int, weights: Sequence[float], minimums: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights`, each part at least its minimum (largest remainder)."""
    counts = list(minimums)
    rest = total - sum(counts)
    if rest <= 0:
        return counts
    weight_sum = sum(weights)
    shares = [rest * w / weight_sum for w in weights]
    floors = [int(s) for s in shares]
    counts = [c + f for c, f in zip(counts, floors)]
    leftover = rest - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in by_remainder[:leftover]:
        counts[i] += 1
    return counts


class _Names:
    """Unique names within one scope, drawn from candidates first and then from a numbered fallback."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def take(self, candidates: Sequence[str], fallback: str) -> str:
        for _ in range(12):
            if not candidates:
                break
            name = self.rng.choice(candidates)
            if name not in self.used:
                self.used.add(name)
                return name
        for name in candidates:   # a small pool: take what is left, in order
            if name not in self.used:
                self.used.add(name)
                return name
        n = 2
        while (name := f"{fallback} số {n}") in self.used:
            n += 1
        self.used.add(name)
        return name


def _company(rng: random.Random) -> str:
    return f"{rng.choice(_COMPANY_FORMS)} {rng.choice(_COMPANY_FIELDS)} {rng.choice(_COMPANY_BRANDS)}"


def _district_places() -> list[str]:
    return [d.place for d in DISTRICTS]


def _district_short_names() -> list[str]:
    return [d.place.removeprefix("thị xã ").removeprefix("quận ").removeprefix("huyện ") for d in DISTRICTS]


def _org_candidates(rng: random.Random, flavour: str, upper: _Upper, local: list[str]) -> tuple[list[str], str]:
    """Candidate organisation names for a grassroots unit of this flavour, and a fallback stem."""
    if flavour == "agency":   # an agency of a district
        committee = upper.name.split(" ", 2)
        u = " ".join(committee[:2]) if len(committee) > 2 else upper.name
        names = [t.format(p=upper.place, u=u) for t in _DISTRICT_AGENCIES]
        return names, f"Cơ quan {upper.place}"
    if flavour == "school":   # a district's schools
        level = rng.choice(["Mầm non", "Tiểu học", "Tiểu học", "THCS", "THCS"])
        pool = _KINDERGARTENS + local if level == "Mầm non" else _HEROES + local
        return [f"Trường {level} {h}" for h in pool], f"Trường {level} {upper.place}"
    if flavour == "company":
        return [_company(rng) for _ in range(6)], _company(rng)
    if flavour == "city_agency":
        return _CITY_AGENCIES, "Cơ quan Thành phố"
    if flavour == "university":
        return _UNIVERSITIES, "Trường Cao đẳng Hà Nội"
    if flavour == "police":
        return ([f"Công an {p}" for p in _district_places()] + _POLICE
                + [f"Đội Cảnh sát phòng cháy, chữa cháy và cứu nạn, cứu hộ khu vực {d}"
                   for d in _district_short_names()]), "Đội Cảnh sát cơ động"
    if flavour == "military":
        return [f"Ban Chỉ huy Quân sự {p}" for p in _district_places()] + _MILITARY, "Tiểu đoàn"
    if flavour == "hospital":
        return _HOSPITALS + [f"Trung tâm Y tế {p}" for p in _district_places()], "Trạm Y tế"
    if flavour == "high_school":
        names = []
        for t in _HIGH_SCHOOLS:
            names += [t.format(h=h, p=p) for h, p in zip(_HEROES, _district_places() * 2)]
        return names, "Trường THPT Hà Nội"
    templates = _BLOC_TEMPLATES.get(flavour)
    if templates:
        names = list(dict.fromkeys(
            t.format(d=d, p=p, b=b, k=k)
            for t in templates
            for d, p, b, k in zip(_district_short_names(), _district_places(), _COMPANY_BRANDS * 2, range(1, 31))))
        return names, templates[0].split(" {")[0]
    return [_company(rng)], "Đơn vị"


def _parse_wards(spec: str) -> list[tuple[str, str]]:
    """'p:A|B;x:C;tt:D' → [('phường A', 'ward'), ...], towns first."""
    prefixes = {"p": ("phường", "ward"), "x": ("xã", "commune"), "tt": ("thị trấn", "ward")}
    out: dict[str, list[tuple[str, str]]] = {"tt": [], "p": [], "x": []}
    for part in filter(None, spec.split(";")):
        key, names = part.split(":", 1)
        word, flavour = prefixes[key]
        out[key] += [(f"{word} {n}", flavour) for n in names.split("|")]
    return out["tt"] + out["p"] + out["x"]


def _branch_names(rng: random.Random, flavour: str, count: int) -> list[str]:
    if flavour in ("ward", "commune"):
        specials = (["Cơ quan", "Công an", "Quân sự"] if flavour == "ward" else
                    ["Cơ quan", "Công an", "Quân sự", "Trường Tiểu học", "Trường THCS", "Trường Mầm non",
                     "Trạm Y tế"])
        n_special = min(len(specials), count // 4)
        n_home = count - n_special
        if flavour == "ward":
            style = rng.choice(["Tổ dân phố số {n}", "Khu dân cư số {n}"])
            homes = [f"Chi bộ {style.format(n=i)}" for i in range(1, n_home + 1)]
        else:
            hamlets = rng.sample(_HAMLETS, min(n_home, len(_HAMLETS)))
            homes = [f"Chi bộ thôn {h}" for h in hamlets]
            homes += [f"Chi bộ Xóm số {i}" for i in range(len(homes) + 1, n_home + 1)]
        return homes + [_n(f"Chi bộ {s}") for s in specials[:n_special]]
    departments = _BRANCH_DEPARTMENTS[flavour]
    picked = rng.sample(departments, min(count, len(departments)))
    names = [f"Chi bộ {d}" for d in picked]
    taken = set(names)
    fallback = _BRANCH_FALLBACK[flavour]
    i = 0
    while len(names) < count:
        i += 1
        if (name := fallback.format(n=i)) not in taken:
            names.append(name)
    return names


def _sub_names(flavour: str, count: int) -> list[str]:
    if flavour == "hospital":
        return [f"Đảng bộ bộ phận Khối {b}" for b in _HOSPITAL_BLOCKS[:count]] + \
            [f"Đảng bộ bộ phận Khối số {i}" for i in range(len(_HOSPITAL_BLOCKS) + 1, count + 1)]
    template = _SUB_NAMES.get(flavour, "Đảng bộ bộ phận số {n}")
    return [template.format(n=i) for i in range(1, count + 1)]


@dataclass
class _Plan:
    root: _Unit
    units: list[_Unit]         # in id order
    holders: list[_Unit]       # units that hold members, in tree order
    grassroots: list[_Unit]
    n_upper: int
    n_sub: int
    n_branch: int
    x_branch: _Unit            # demo secretary's branch (Ba Đình)
    y_unit: _Unit              # demo district committee member's branch (Ba Đình)
    board_unit: _Unit          # demo board's branch (city agencies bloc)
    ba_dinh: _Unit             # the demo district committee member's upper unit


def _plan_tree(rng: random.Random, members: int) -> _Plan:
    n_upper = max(2, min(50, round(math.sqrt(members) / 13.3)))
    uppers = _choose_uppers(n_upper)
    n_grassroots = max(n_upper, 2, round(members / MEMBERS_PER_GRASSROOTS))
    per_upper = _apportion(n_grassroots, [u.weight for u in uppers], [1] * len(uppers))

    # Kinds of grassroots: the first of every upper unit has branches (the demo accounts need one in
    # Ba Đình and one in the city agencies bloc); among the others, ~10% chi bộ cơ sở, ~3% with subs.
    eligible = [(ui, gi) for ui, count in enumerate(per_upper) for gi in range(1, count)]
    n_cbcs = min(round(CHI_BO_CO_SO_SHARE * n_grassroots), len(eligible))
    n_sub = max(1, round(SUB_SHARE * n_grassroots)) if n_grassroots >= 4 else 0
    n_sub = min(n_sub, len(eligible) - n_cbcs)
    picked = rng.sample(eligible, n_cbcs + n_sub)
    kind_of = {key: "cbcs" for key in picked[:n_cbcs]}
    kind_of.update({key: "sub" for key in picked[n_cbcs:]})

    root = _Unit(CITY_CODE, CITY_NAME, UnitKind.CITY.value, None)
    companies = _Names(rng)                       # company names are unique city-wide
    grassroots: list[_Unit] = []
    shape: dict[_Unit, str] = {}                  # grassroots → normal | cbcs | sub
    for ui, (upper, count) in enumerate(zip(uppers, per_upper)):
        up = root.add(_Unit(upper.code, upper.name, UnitKind.UPPER.value, root))
        names = _Names(rng)
        wards = _parse_wards(upper.wards)
        towns = [w for w in wards if w[0].startswith("thị trấn")]
        others = [w for w in wards if w not in towns]
        rng.shuffle(others)
        wards = towns + others                    # a district's town first, then its wards/communes
        local = [w[0].split(" ", 1)[1] for w in wards if not w[0].startswith("thị trấn")]
        for gi in range(count):
            form = kind_of.get((ui, gi), "normal")
            if upper.code == CITY_BLOC_CODE and gi == 0:   # where the city board's branch is
                org, branch_flavour = _n("Văn phòng Thành ủy"), "agency"
                names.used.add(org)
            elif upper.flavour:                   # a bloc
                flavour = upper.flavour
                branch_flavour = _BLOC_BRANCH_FLAVOUR[flavour]
                candidates, stem = _org_candidates(rng, flavour, upper, local)
                org = (companies if flavour == "company" else names).take(candidates, stem)
            elif form != "cbcs" and wards:        # a ward, commune or town
                org, branch_flavour = wards.pop(0)
                names.used.add(org)
            else:                                 # an agency, school or company of the district
                r = rng.random()
                if form == "cbcs":
                    branch_flavour = "school" if r < 0.55 else ("agency" if r < 0.8 else "company")
                elif form == "sub":
                    branch_flavour = "company" if r < 0.7 else "agency"
                else:
                    branch_flavour = "company" if r < 0.45 else ("agency" if r < 0.8 else "school")
                candidates, stem = _org_candidates(rng, branch_flavour, upper, local)
                if branch_flavour == "agency" and names.used.issuperset(candidates):
                    branch_flavour = "company"        # the district's agencies are all there already
                    candidates, stem = _org_candidates(rng, branch_flavour, upper, local)
                org = (companies if branch_flavour == "company" else names).take(candidates, stem)
            prefix = "Chi bộ cơ sở" if form == "cbcs" else "Đảng bộ"
            unit = up.add(_Unit(f"{upper.code}.{gi + 1:03d}", _n(f"{prefix} {org}"),
                                UnitKind.GRASSROOTS.value, up, flavour=branch_flavour))
            grassroots.append(unit)
            shape[unit] = form

    # Branches: about one per 20 members, less the chi bộ cơ sở; a unit with subs needs one per sub.
    with_branches = [g for g in grassroots if shape[g] != "cbcs"]
    subs_of = {g: rng.randint(2, 4) for g in with_branches if shape[g] == "sub"}
    minimums = [subs_of.get(g, 1) for g in with_branches]
    n_branch = max(3, round(members / MEMBERS_PER_HOLDING_UNIT) - n_cbcs, sum(minimums))
    weights = [(3.0 if g in subs_of else _BRANCH_WEIGHT[g.flavour]) * rng.uniform(0.5, 1.5)
               for g in with_branches]
    branch_counts = dict(zip(with_branches, _apportion(n_branch, weights, minimums)))

    for g in grassroots:
        if shape[g] == "cbcs":
            continue
        count = branch_counts[g]
        names = _branch_names(rng, g.flavour, count)
        parents = [g] * count
        if g in subs_of:
            n = subs_of[g]
            subs = [g.add(_Unit(f"{g.code}.B{i + 1}", _n(name), UnitKind.SUB.value, g, flavour=g.flavour))
                    for i, name in enumerate(_sub_names(g.flavour, n))]
            split = _apportion(count, [1.0] * n, [1] * n)
            parents = [s for s, c in zip(subs, split) for _ in range(c)]
        seen: dict[_Unit, int] = {}
        for name, parent in zip(names, parents):
            seen[parent] = seen.get(parent, 0) + 1
            parent.add(_Unit(f"{parent.code}.{seen[parent]:02d}", _n(name), UnitKind.BRANCH.value, parent))

    # Ids by level (root, uppers, grassroots, subs, branches), each level in tree order; then paths.
    order: dict[str, list[_Unit]] = {k.value: [] for k in UnitKind}
    holders: list[_Unit] = []

    def walk(unit: _Unit) -> None:
        order[unit.kind].append(unit)
        if unit.kind == UnitKind.BRANCH.value or (unit.kind == UnitKind.GRASSROOTS.value and not unit.children):
            holders.append(unit)
        for child in unit.children:
            walk(child)

    walk(root)
    units = [u for kind in UnitKind for u in order[kind.value]]
    for i, unit in enumerate(units, start=1):
        unit.id = i
    for unit in units:   # parents come before their children
        if unit.parent is None:
            unit.path, unit.depth = f"/{unit.id}/", 0
        else:
            unit.path, unit.depth = f"{unit.parent.path}{unit.id}/", unit.parent.depth + 1

    ba_dinh = next(u for u in root.children if u.code == DISTRICTS[0].code)
    bloc = next(u for u in root.children if u.code == CITY_BLOC_CODE)
    ba_dinh_branches = [h for h in holders if h.kind == UnitKind.BRANCH.value and h.path.startswith(ba_dinh.path)]
    x_branch = ba_dinh.children[0].children[0]
    y_unit = next((b for b in ba_dinh_branches if b is not x_branch), x_branch)
    board_unit = bloc.children[0].children[0]
    return _Plan(root, units, holders, grassroots, len(uppers), len(order[UnitKind.SUB.value]),
                 len(order[UnitKind.BRANCH.value]), x_branch, y_unit, board_unit, ba_dinh)


def _size_holders(rng: random.Random, plan: _Plan, members: int) -> None:
    """Members per branch (and chi bộ cơ sở): 5–60, mean about 20, summing to exactly `members`."""
    holders = plan.holders
    count = len(holders)
    if count > members:
        raise ValueError(f"{members} members cannot fill {count} branches")
    lo = min(MIN_BRANCH, members // count)
    hi = max(MAX_BRANCH, -(-members // count))
    need = {plan.board_unit: 1, plan.x_branch: 2}
    need[plan.y_unit] = need.get(plan.y_unit, 0) + 1
    low = [max(lo, need.get(h, 0)) for h in holders]
    if sum(low) > members:
        raise ValueError(f"{members} members are too few for the demo tree")
    sizes = [min(hi, max(low[i], MIN_BRANCH + round(rng.gammavariate(2.0, 7.5)))) for i in range(count)]
    diff = members - sum(sizes)
    while diff:
        i = rng.randrange(count)
        if diff > 0 and sizes[i] < hi:
            sizes[i] += 1
            diff -= 1
        elif diff < 0 and sizes[i] > low[i]:
            sizes[i] -= 1
            diff += 1
    for h, s in zip(holders, sizes):
        h.size = s


def _place_members(plan: _Plan, members: int) -> array:
    """Member seq → unit id. The demo accounts (1–4) go to their units; the rest fill units in order."""
    demo = {plan.board_unit: [1], plan.y_unit: [2]}
    demo[plan.x_branch] = demo.get(plan.x_branch, []) + [3, 4]
    unit_of = array("i", [0]) * (members + 1)
    seq = 5
    for h in plan.holders:
        fixed = sorted(demo.get(h, []))
        rest = h.size - len(fixed)
        h.members = fixed + list(range(seq, seq + rest))
        seq += rest
        for m in h.members:
            unit_of[m] = h.id
    assert seq == members + 1, (seq, members)
    return unit_of


def _roles(plan: _Plan) -> list[tuple[int, str, int]]:
    """(member seq, role, unit id): the demo accounts, a secretary per branch, a committee member per
    grassroots unit."""
    grants = [(1, "admin", plan.root.id), (1, "publisher", plan.root.id), (2, "committee", plan.ba_dinh.id)]
    no_secretary = {1, 2, 4}
    demo = {1, 2, 3, 4}
    secretary_of: dict[_Unit, int] = {}
    for h in plan.holders:
        sec = next((m for m in h.members if m not in no_secretary), None)
        if sec is not None:
            secretary_of[h] = sec
            grants.append((sec, "secretary", h.id))
    holders_under: dict[_Unit, list[_Unit]] = {}
    for h in plan.holders:
        g = h
        while g.kind != UnitKind.GRASSROOTS.value:
            g = g.parent
        holders_under.setdefault(g, []).append(h)
    for g in plan.grassroots:
        chosen = None
        for h in holders_under.get(g, []):
            chosen = next((m for m in h.members if m not in demo and m != secretary_of.get(h)), None)
            if chosen is not None:
                break
        if chosen is not None:
            grants.append((chosen, "committee", g.id))
    return grants


def _full_names(rng: random.Random, count: int) -> list[str]:
    surnames = rng.choices([s for s, _ in _SURNAMES], weights=[w for _, w in _SURNAMES], k=count)
    male_mid = rng.choices([s for s, _ in _MALE_MIDDLE], weights=[w for _, w in _MALE_MIDDLE], k=count)
    female_mid = rng.choices([s for s, _ in _FEMALE_MIDDLE], weights=[w for _, w in _FEMALE_MIDDLE], k=count)
    out = []
    rand, choice = rng.random, rng.choice
    for i in range(count):
        if rand() < _MALE_SHARE:
            middle = male_mid[i]
            given = choice(_MALE_GIVEN)
            while given == middle:
                given = choice(_MALE_GIVEN)
        else:
            middle = female_mid[i]
            if middle == "Thị" and rand() < 0.25:
                middle = f"Thị {choice(_FEMALE_SECOND_MIDDLE)}"
            given = choice(_FEMALE_GIVEN)
            while middle.endswith(given):
                given = choice(_FEMALE_GIVEN)
        out.append(f"{surnames[i]} {middle} {given}")
    return out


def _phones(rng: random.Random, count: int) -> list[str]:
    """Distinct 10-digit mobile numbers: `count` distinct draws (sampling without replacement) from the
    280 million numbers of the prefixes, so no two members share one."""
    span = 10 ** 7
    prefixes = _PHONE_PREFIXES
    return [f"{prefixes[j // span]}{j % span:07d}" for j in rng.sample(range(len(prefixes) * span), count)]


# --- writing ---------------------------------------------------------------------------------------

_UNIT_COLUMNS = ("id", "code", "name", "kind", "parent_id", "path", "depth", "created_at", "updated_at")
_MEMBER_COLUMNS = ("id", "card_number", "full_name", "phone", "org_unit_id", "password_hash", "active",
                   "created_at", "updated_at")
_GRANT_COLUMNS = ("id", "member_id", "role", "org_unit_id", "granted_at", "granted_by")


def _write(dialect: str, table, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    if dialect == "postgresql":
        raw = db.session.connection().connection.driver_connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    batch: list[dict] = []
    for row in rows:
        batch.append(dict(zip(columns, row)))
        if len(batch) >= CHUNK:
            db.session.execute(insert(table), batch)
            batch = []
    if batch:
        db.session.execute(insert(table), batch)


def load_demo(members: int, *, seed: int = 2023) -> None:
    """Load the demo tree and `members` members into an empty database (raises DemoExists otherwise)."""
    from handbook.auth import hash_password

    if db.session.scalar(select(OrgUnit.id).limit(1)) is not None:
        raise DemoExists()
    if members < 10:
        raise ValueError("the demo needs at least 10 members")
    started = time.perf_counter()
    rng = random.Random(seed)

    plan = _plan_tree(rng, members)
    _size_holders(rng, plan, members)
    unit_of = _place_members(plan, members)
    grants = _roles(plan)
    names = _full_names(rng, members)
    phones = _phones(rng, members)
    password_hash = hash_password(DEMO_PASSWORD)   # once: every demo member shares it
    now = datetime.now(UTC)

    dialect = db.session.get_bind().dialect.name
    try:
        _write(dialect, OrgUnit.__table__, _UNIT_COLUMNS, (
            (u.id, u.code, u.name, u.kind, u.parent.id if u.parent else None, u.path, u.depth, now, now)
            for u in plan.units))
        _write(dialect, Member.__table__, _MEMBER_COLUMNS, (
            (seq, card_number(seq), names[seq - 1], phones[seq - 1], unit_of[seq], password_hash, True, now, now)
            for seq in range(1, members + 1)))
        _write(dialect, RoleGrant.__table__, _GRANT_COLUMNS, (
            (i, member, role, unit, now, None) for i, (member, role, unit) in enumerate(grants, start=1)))
        if dialect == "postgresql":
            for table in ("org_units", "members", "role_grants"):
                db.session.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"))
            db.session.execute(text("ANALYZE org_units, members, role_grants"))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    n_grassroots = len(plan.grassroots)
    click.echo(f"Demo: 1 city, {plan.n_upper} upper, {n_grassroots:,} grassroots, {plan.n_sub:,} sub, "
               f"{plan.n_branch:,} branches, {members:,} members, {len(grants):,} roles "
               f"in {time.perf_counter() - started:.1f} s")


def demo_logins() -> list[str]:
    """One line per demo account present in the database: how to sign in as it."""
    cards = [card for card, _ in DEMO_ACCOUNTS]
    found = {m.card_number: m for m in db.session.scalars(select(Member).where(Member.card_number.in_(cards)))}
    lines = []
    for card, label in DEMO_ACCOUNTS:
        member = found.get(card)
        if member is not None:
            lines.append(f"{label}: {member.card_number} / {member.phone} — password {DEMO_PASSWORD} — "
                         f"{member.full_name}, {member.org_unit.name}")
    return lines or ["No demo accounts in this database."]
