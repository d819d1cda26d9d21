"""Demo documents: what the board and Quận ủy Ba Đình have published into a freshly loaded demo tree.

`load_demo_documents()` runs after `handbook.demo.load_demo` and goes through the publishing workflow
(content.documents: create_series, create_document, publish_document) as the demo board account
01000001, exactly as the board's tools would, so drafts, versions, notifications, audit entries and
the search index are all what a real publication leaves behind. It creates:

- two city directives that need acknowledgement (Chỉ thị 24-CT/TU of the city's standing committee,
  Chỉ thị 05-CT/TW of the Politburo), one published twelve days ago (two days left), one two days ago;
- a city notice that needs no acknowledgement;
- a plan of Quận ủy Ba Đình to Ba Đình's subtree (the board publishes it, the district owns it);
- a study series (chuyên đề) of three lessons on the history of the Hanoi Party organisation;
- a guidance scheduled for a week ahead, and a draft resolution, so that publishers see every status.

Published documents are then moved back in time to the day they "went out" (published_at, sync_at,
deadline = deadline_for(published_at, ack_days), the publication's notification and version 1 with
them); their searchable text is not changed, so the search index stays as create_document wrote it.
The audit trail is left as it is: it records what really happened (the loader published them now).
The publications' notifications stay `pending`, now due when their document went out: whatever fans
them out sends them on its first run (the demo tree has no registered devices yet).

The texts are written for the demo: they paraphrase what such documents say and are not the real
documents' wording (each body says so).

Idempotent: if the database already holds documents, nothing is created.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from content.documents import create_document, create_series, deadline_for, publish_document
from content.models import Document, DocumentVersion, Kind, Series, Status
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit
from handbook.timeutil import as_utc, local_zone, utcnow
from push.models import Notification, NotificationKind

BOARD_CARD = "01000001"
BA_DINH_NAME = "Quận ủy Ba Đình"

_NOTE = ("<p><em>Nội dung tóm lược, biên soạn minh họa cho dữ liệu demo của Sổ tay đảng viên điện tử; "
         "không phải nguyên văn văn bản.</em></p>")


@dataclass
class _Doc:
    """One demo document and when it goes out."""

    kind: str
    number: str | None
    title: str
    summary: str
    body_html: str
    issuing_body: str
    issued_on: date | None = None
    audience: str = "city"            # "city" or "ba_dinh"
    requires_ack: bool = True
    ack_days: int = 14
    tags: list[str] = field(default_factory=list)
    lesson_no: int | None = None
    # Published `days_ago` local days ago at `at` (local time); or scheduled `days_ahead`; or a draft.
    days_ago: int | None = None
    days_ahead: int | None = None
    at: time = time(8, 0)
    issued_days_before: int = 2       # issued_on for the texts written here: this many days before publication


# --- the texts -------------------------------------------------------------------------------------

_CT24 = _Doc(
    kind=Kind.DIRECTIVE.value, number="24-CT/TU",
    title="Chỉ thị về tăng cường kỷ luật, kỷ cương, trách nhiệm trong thực thi công vụ của cán bộ, đảng viên",
    summary="Ban Thường vụ Thành ủy yêu cầu siết chặt kỷ luật, kỷ cương, đề cao trách nhiệm nêu gương của "
            "người đứng đầu; khắc phục tình trạng né tránh, đùn đẩy, sợ sai không dám làm; quán triệt đến "
            "100% cán bộ, đảng viên trong hai tuần.",
    issuing_body="Ban Thường vụ Thành ủy Hà Nội", issued_on=date(2023, 8, 7),
    tags=["kỷ luật", "kỷ cương", "trách nhiệm", "người đứng đầu"],
    days_ago=12, at=time(8, 30),
    body_html="""
<h2>I. Tình hình và yêu cầu</h2>
<p>Thời gian qua, các cấp ủy, tổ chức đảng trong Đảng bộ Thành phố đã có nhiều chuyển biến trong việc
chấp hành kỷ luật, kỷ cương. Tuy nhiên, ở một số nơi vẫn còn tình trạng né tránh, đùn đẩy trách nhiệm,
sợ sai không dám làm; giải quyết công việc của người dân và doanh nghiệp còn chậm, có hồ sơ quá hạn
không rõ lý do.</p>
<p>Để khắc phục những hạn chế đó, Ban Thường vụ Thành ủy yêu cầu các cấp ủy, tổ chức đảng, cơ quan,
đơn vị và mỗi cán bộ, đảng viên thực hiện tốt các nhiệm vụ dưới đây.</p>
<h2>II. Nhiệm vụ, giải pháp chủ yếu</h2>
<ol>
<li><strong>Nâng cao nhận thức và trách nhiệm nêu gương</strong> của cán bộ, đảng viên, trước hết là
người đứng đầu cấp ủy, cơ quan, đơn vị: nói đi đôi với làm, làm gương trước, chịu trách nhiệm đến cùng.</li>
<li><strong>Siết chặt kỷ luật, kỷ cương hành chính</strong>: công khai quy trình, thời hạn giải quyết
công việc; mỗi hồ sơ chậm phải có lý do và có người chịu trách nhiệm.</li>
<li><strong>Khuyến khích, bảo vệ cán bộ dám nghĩ, dám làm, dám chịu trách nhiệm</strong> vì lợi ích
chung; xử lý nghiêm cán bộ né tránh, đùn đẩy, gây phiền hà.</li>
<li><strong>Tăng cường kiểm tra, giám sát</strong> việc thực thi công vụ; phát huy vai trò giám sát của
Mặt trận Tổ quốc, các đoàn thể và Nhân dân.</li>
</ol>
<h2>III. Tổ chức thực hiện</h2>
<table>
<thead><tr><th>Thời hạn</th><th>Nội dung</th><th>Chủ trì</th></tr></thead>
<tbody>
<tr><td>Trong 01 tuần</td><td>Xây dựng kế hoạch thực hiện Chỉ thị</td>
<td>Các quận ủy, huyện ủy, thị ủy, đảng ủy trực thuộc Thành ủy</td></tr>
<tr><td>Trong 02 tuần</td><td>Quán triệt đến 100% cán bộ, đảng viên; đảng viên xác nhận đã đọc trên
Sổ tay đảng viên điện tử hoặc được phổ biến tại sinh hoạt chi bộ</td><td>Chi bộ, đảng bộ cơ sở</td></tr>
<tr><td>Hằng quý</td><td>Báo cáo kết quả thực hiện về Ban Thường vụ Thành ủy (qua Văn phòng Thành ủy)</td>
<td>Các đảng bộ trực thuộc Thành ủy</td></tr>
</tbody>
</table>
<p>Chỉ thị này được phổ biến đến chi bộ và đảng viên.</p>
""")

_CT05 = _Doc(
    kind=Kind.DIRECTIVE.value, number="05-CT/TW",
    title="Chỉ thị về đẩy mạnh học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh",
    summary="Học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh là nhiệm vụ thường xuyên của "
            "mỗi cấp ủy, tổ chức đảng và mỗi cán bộ, đảng viên; mỗi đảng viên đăng ký việc làm theo gắn với "
            "nhiệm vụ được giao.",
    issuing_body="Bộ Chính trị", issued_on=date(2016, 5, 15),
    tags=["học tập và làm theo Bác", "tư tưởng Hồ Chí Minh", "nêu gương"],
    days_ago=2, at=time(9, 0),
    body_html="""
<h2>I. Nội dung học tập</h2>
<p>Việc học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh là nội dung quan trọng của công
tác xây dựng Đảng, là việc làm thường xuyên của các cấp ủy, tổ chức đảng, cơ quan, đơn vị và của mỗi
cán bộ, đảng viên.</p>
<h3>1. Tư tưởng Hồ Chí Minh</h3>
<p>Độc lập dân tộc gắn liền với chủ nghĩa xã hội; dân là gốc; đại đoàn kết toàn dân tộc; xây dựng Đảng
thật sự trong sạch, vững mạnh.</p>
<h3>2. Đạo đức Hồ Chí Minh</h3>
<ul>
<li>Trung với nước, hiếu với dân;</li>
<li>Cần, kiệm, liêm, chính, chí công vô tư;</li>
<li>Yêu thương con người, sống có nghĩa, có tình;</li>
<li>Tinh thần quốc tế trong sáng.</li>
</ul>
<h3>3. Phong cách Hồ Chí Minh</h3>
<p>Phong cách tư duy, làm việc, diễn đạt, ứng xử và sinh hoạt: gần dân, trọng dân, nói đi đôi với làm.</p>
<h2>II. Yêu cầu đối với chi bộ và đảng viên</h2>
<ol>
<li>Mỗi đảng viên đăng ký nội dung làm theo gắn với nhiệm vụ được giao, báo cáo tại chi bộ.</li>
<li>Chi bộ đưa nội dung học tập vào sinh hoạt định kỳ; đánh giá việc làm theo khi kiểm điểm cuối năm.</li>
<li>Người đứng đầu cấp ủy, cơ quan, đơn vị gương mẫu đi đầu.</li>
</ol>
""")

_NOTICE = _Doc(
    kind=Kind.NOTICE.value, number="86-TB/TU",
    title="Thông báo về việc triển khai Sổ tay đảng viên điện tử trong Đảng bộ Thành phố",
    summary="Từ nay các chỉ thị, nghị quyết, kế hoạch và tài liệu học tập được gửi đến đảng viên qua Sổ tay "
            "đảng viên điện tử; hướng dẫn cài đặt, đăng nhập và xác nhận đã đọc.",
    issuing_body="Văn phòng Thành ủy Hà Nội", requires_ack=False,
    tags=["sổ tay đảng viên", "chuyển đổi số"],
    days_ago=1, at=time(15, 30), issued_days_before=1,
    body_html="""
<h2>Sổ tay đảng viên điện tử</h2>
<p>Ban Thường vụ Thành ủy thông báo: các chỉ thị, nghị quyết, kế hoạch và tài liệu học tập của các cấp
ủy được gửi đến từng đảng viên qua Sổ tay đảng viên điện tử, song song với việc phổ biến tại sinh hoạt
chi bộ.</p>
<h3>Đảng viên cần làm gì</h3>
<ol>
<li>Cài đặt ứng dụng, đăng nhập bằng số thẻ đảng viên hoặc số điện thoại đã đăng ký với chi bộ.</li>
<li>Đổi mật khẩu ban đầu ngay lần đăng nhập đầu tiên.</li>
<li>Đọc văn bản và bấm <strong>Đã đọc, đã hiểu</strong> với văn bản yêu cầu xác nhận, trong thời hạn ghi
trên văn bản; điện thoại mất sóng vẫn xác nhận được, ứng dụng tự gửi khi có mạng.</li>
</ol>
<h3>Bí thư chi bộ</h3>
<ul>
<li>Theo dõi đảng viên chưa đọc, nhắc nhở khi cần;</li>
<li>Ghi nhận việc phổ biến trực tiếp tại sinh hoạt chi bộ cho đảng viên không sử dụng được ứng dụng;</li>
<li>Ghi nhận đảng viên được miễn (ốm đau, miễn sinh hoạt đảng) kèm lý do.</li>
</ul>
<p>Thông báo này không yêu cầu xác nhận đã đọc.</p>
""")

_PLAN = _Doc(
    kind=Kind.PLAN.value, number="145-KH/QU",
    title="Kế hoạch thực hiện Chỉ thị số 24-CT/TU của Ban Thường vụ Thành ủy về tăng cường kỷ luật, kỷ cương, "
          "trách nhiệm trong Đảng bộ quận Ba Đình",
    summary="Quận ủy Ba Đình giao nhiệm vụ cho các đảng bộ, chi bộ trực thuộc: quán triệt Chỉ thị 24-CT/TU đến "
            "mọi đảng viên, rà soát thủ tục hành chính chậm, báo cáo kết quả hằng quý.",
    issuing_body=BA_DINH_NAME, audience="ba_dinh", ack_days=10,
    tags=["kỷ cương", "Ba Đình", "kế hoạch"],
    days_ago=6, at=time(14, 0), issued_days_before=3,
    body_html="""
<h2>I. Mục đích, yêu cầu</h2>
<p>Cụ thể hóa Chỉ thị số 24-CT/TU của Ban Thường vụ Thành ủy phù hợp với tình hình của quận; tạo chuyển
biến rõ rệt về kỷ luật, kỷ cương, tinh thần phục vụ Nhân dân của cán bộ, đảng viên, trước hết ở các
phường và bộ phận một cửa.</p>
<h2>II. Nhiệm vụ cụ thể</h2>
<table>
<thead><tr><th>TT</th><th>Nhiệm vụ</th><th>Đơn vị thực hiện</th><th>Thời hạn</th></tr></thead>
<tbody>
<tr><td>1</td><td>Tổ chức quán triệt Chỉ thị và Kế hoạch đến 100% đảng viên</td>
<td>Các đảng bộ, chi bộ trực thuộc</td><td>Trong 10 ngày</td></tr>
<tr><td>2</td><td>Rà soát hồ sơ, thủ tục hành chính giải quyết chậm; làm rõ trách nhiệm</td>
<td>Đảng ủy các phường</td><td>Hằng tháng</td></tr>
<tr><td>3</td><td>Kiểm tra, giám sát việc thực hiện tại một số chi bộ</td>
<td>Ủy ban Kiểm tra Quận ủy</td><td>Quý cuối năm</td></tr>
<tr><td>4</td><td>Báo cáo kết quả về Ban Thường vụ Quận ủy</td>
<td>Các đảng bộ, chi bộ trực thuộc</td><td>Trước ngày 15 tháng cuối quý</td></tr>
</tbody>
</table>
<h2>III. Tổ chức thực hiện</h2>
<ul>
<li>Văn phòng Quận ủy theo dõi, đôn đốc, tổng hợp tiến độ xác nhận đã đọc trên Sổ tay đảng viên điện tử.</li>
<li>Bí thư chi bộ chịu trách nhiệm phổ biến cho đảng viên không sử dụng ứng dụng tại sinh hoạt chi bộ gần nhất.</li>
</ul>
""")

_SERIES_TITLE = "Chuyên đề: Lịch sử Đảng bộ Thành phố Hà Nội"
_SERIES_SUMMARY = ("Ba bài học về chặng đường của Đảng bộ Hà Nội: từ những chi bộ cộng sản đầu tiên, qua Cách "
                   "mạng Tháng Tám và kháng chiến, đến xây dựng và phát triển Thủ đô thời kỳ đổi mới.")

_LESSONS = [
    _Doc(
        kind=Kind.STUDY.value, number=None, lesson_no=1,
        title="Bài 1: Sự ra đời của tổ chức Đảng ở Hà Nội (1929–1930)",
        summary="Lịch sử Đảng bộ Hà Nội, bài 1: chi bộ cộng sản đầu tiên tại số nhà 5D Hàm Long và sự ra đời "
                "của Thành ủy Hà Nội ngày 17/3/1930.",
        issuing_body="Ban Tuyên giáo Thành ủy Hà Nội", requires_ack=False,
        tags=["lịch sử Đảng bộ", "chuyên đề"], days_ago=25, at=time(8, 0), issued_days_before=5,
        body_html="""
<h2>Những hạt giống đỏ đầu tiên</h2>
<p>Cuối những năm 1920, phong trào yêu nước và công nhân ở Hà Nội phát triển mạnh. Tháng 3/1929, chi bộ
cộng sản đầu tiên ở Việt Nam được thành lập tại số nhà 5D phố Hàm Long, mở đầu cho sự ra đời của các tổ
chức cộng sản trong cả nước.</p>
<h2>Thành ủy Hà Nội ra đời</h2>
<p>Sau khi Đảng Cộng sản Việt Nam được thành lập (3/2/1930), ngày 17/3/1930 Thành ủy Hà Nội đầu tiên
được thành lập, trực tiếp lãnh đạo phong trào cách mạng của Thủ đô.</p>
<h3>Câu hỏi thảo luận tại chi bộ</h3>
<ol>
<li>Vì sao Hà Nội sớm trở thành nơi ra đời của các tổ chức cộng sản?</li>
<li>Truyền thống ấy đặt ra yêu cầu gì với đảng viên hôm nay?</li>
</ol>
"""),
    _Doc(
        kind=Kind.STUDY.value, number=None, lesson_no=2,
        title="Bài 2: Đảng bộ Hà Nội trong Cách mạng Tháng Tám và kháng chiến (1945–1954)",
        summary="Lịch sử Đảng bộ Hà Nội, bài 2: giành chính quyền ngày 19/8/1945, toàn quốc kháng chiến "
                "19/12/1946 và ngày giải phóng Thủ đô 10/10/1954.",
        issuing_body="Ban Tuyên giáo Thành ủy Hà Nội", requires_ack=False,
        tags=["lịch sử Đảng bộ", "chuyên đề"], days_ago=18, at=time(8, 0), issued_days_before=5,
        body_html="""
<h2>Cách mạng Tháng Tám</h2>
<p>Ngày 19/8/1945, dưới sự lãnh đạo của Đảng bộ, Nhân dân Hà Nội vùng lên giành chính quyền, góp phần
quyết định vào thắng lợi của Cách mạng Tháng Tám trong cả nước.</p>
<h2>Kháng chiến và giải phóng Thủ đô</h2>
<ul>
<li><strong>19/12/1946:</strong> Hà Nội nổ súng mở đầu cuộc kháng chiến toàn quốc; quân và dân Thủ đô
chiến đấu giam chân địch, bảo vệ cơ quan đầu não rút lên chiến khu an toàn.</li>
<li><strong>1947–1954:</strong> Đảng bộ lãnh đạo phong trào kháng chiến trong vùng địch tạm chiếm.</li>
<li><strong>10/10/1954:</strong> giải phóng Thủ đô.</li>
</ul>
<h3>Liên hệ</h3>
<p>Mỗi chi bộ liên hệ truyền thống cách mạng của địa phương, đơn vị mình.</p>
"""),
    _Doc(
        kind=Kind.STUDY.value, number=None, lesson_no=3,
        title="Bài 3: Xây dựng và phát triển Thủ đô trong thời kỳ đổi mới",
        summary="Lịch sử Đảng bộ Hà Nội, bài 3: từ công cuộc đổi mới năm 1986, việc mở rộng địa giới Thủ đô năm "
                "2008 đến Đại lễ kỷ niệm 1000 năm Thăng Long – Hà Nội.",
        issuing_body="Ban Tuyên giáo Thành ủy Hà Nội", requires_ack=False,
        tags=["lịch sử Đảng bộ", "chuyên đề"], days_ago=4, at=time(8, 0), issued_days_before=5,
        body_html="""
<h2>Đổi mới và hội nhập</h2>
<p>Thực hiện đường lối đổi mới do Đại hội VI của Đảng (1986) đề ra, Đảng bộ Hà Nội lãnh đạo Thủ đô vượt
qua khó khăn, phát triển kinh tế – xã hội, giữ vững ổn định chính trị.</p>
<h2>Những dấu mốc</h2>
<ul>
<li><strong>1/8/2008:</strong> mở rộng địa giới hành chính Thủ đô (hợp nhất tỉnh Hà Tây và một số xã,
huyện lân cận).</li>
<li><strong>10/2010:</strong> Đại lễ kỷ niệm 1000 năm Thăng Long – Hà Nội.</li>
<li>Luật Thủ đô tạo cơ sở pháp lý cho việc xây dựng Thủ đô “Văn hiến – Văn minh – Hiện đại”.</li>
</ul>
<h3>Câu hỏi thảo luận tại chi bộ</h3>
<p>Đảng viên của chi bộ có thể đóng góp gì cho mục tiêu xây dựng Thủ đô trong giai đoạn mới?</p>
"""),
]

_SCHEDULED = _Doc(
    kind=Kind.GUIDANCE.value, number="15-HD/BTGTU",
    title="Hướng dẫn sinh hoạt chi bộ chuyên đề về học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh",
    summary="Nội dung, cách thức tổ chức buổi sinh hoạt chuyên đề tại chi bộ và việc đăng ký làm theo của "
            "đảng viên.",
    issuing_body="Ban Tuyên giáo Thành ủy Hà Nội",
    tags=["sinh hoạt chi bộ", "học tập và làm theo Bác"],
    days_ahead=7, at=time(7, 30), issued_days_before=9,
    body_html="""
<h2>I. Nội dung sinh hoạt</h2>
<p>Chi bộ chọn một nội dung trong tư tưởng, đạo đức, phong cách Hồ Chí Minh gắn với nhiệm vụ chính trị của
chi bộ, đơn vị.</p>
<h2>II. Cách thức tổ chức</h2>
<ol>
<li>Bí thư chi bộ chuẩn bị báo cáo đề dẫn, gửi trước cho đảng viên qua Sổ tay đảng viên điện tử.</li>
<li>Đảng viên thảo luận, liên hệ bản thân; chi bộ kết luận những việc cần làm.</li>
<li>Đảng viên đăng ký việc làm theo; chi bộ theo dõi, đánh giá khi kiểm điểm cuối năm.</li>
</ol>
""")

_DRAFT = _Doc(
    kind=Kind.RESOLUTION.value, number=None,
    title="Nghị quyết về đẩy mạnh chuyển đổi số trong công tác xây dựng Đảng của Đảng bộ Thành phố (dự thảo)",
    summary="Dự thảo: số hóa hồ sơ đảng viên, sinh hoạt chi bộ có hỗ trợ của Sổ tay đảng viên điện tử, "
            "theo dõi việc quán triệt văn bản theo thời gian thực.",
    issuing_body="Ban Chấp hành Đảng bộ Thành phố Hà Nội",
    tags=["chuyển đổi số", "dự thảo"],
    body_html="""
<h2>Dự thảo – chưa ban hành</h2>
<p>Nghị quyết đặt mục tiêu mọi chi bộ sử dụng Sổ tay đảng viên điện tử trong sinh hoạt và mọi văn bản của
cấp ủy được gửi, theo dõi quán triệt trên môi trường số.</p>
<h3>Chỉ tiêu dự kiến</h3>
<table>
<thead><tr><th>Chỉ tiêu</th><th>Mục tiêu</th></tr></thead>
<tbody>
<tr><td>Đảng viên sử dụng Sổ tay đảng viên điện tử</td><td>Trên 95%</td></tr>
<tr><td>Văn bản được quán triệt đúng hạn</td><td>Trên 90%</td></tr>
<tr><td>Hồ sơ đảng viên được số hóa</td><td>100%</td></tr>
</tbody>
</table>
""")

# Published documents in the order they went out (oldest first, so ids follow time), then the rest.
_PUBLISHED = [_LESSONS[0], _LESSONS[1], _CT24, _PLAN, _LESSONS[2], _CT05, _NOTICE]


# --- loading ---------------------------------------------------------------------------------------

def _units() -> tuple[OrgUnit | None, OrgUnit | None]:
    """The city root and Quận ủy Ba Đình, found by the codes handbook.demo gives them (or by name)."""
    from handbook.demo import CITY_CODE, CITY_NAME, DISTRICTS  # here: handbook.demo may import this module

    ba_dinh_code = next((d.code for d in DISTRICTS if d.name == BA_DINH_NAME), None)
    by_code = {u.code: u for u in db.session.scalars(
        select(OrgUnit).where(OrgUnit.code.in_([CITY_CODE, ba_dinh_code])))}
    city = by_code.get(CITY_CODE) or db.session.scalar(
        select(OrgUnit).where(OrgUnit.parent_id.is_(None), OrgUnit.name == CITY_NAME).limit(1))
    ba_dinh = by_code.get(ba_dinh_code) or db.session.scalar(
        select(OrgUnit).where(OrgUnit.name == BA_DINH_NAME).limit(1))
    return city, ba_dinh


def _local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=local_zone()).astimezone(UTC)


def _data(spec: _Doc, unit: OrgUnit, out_day: date | None, series_id: int | None = None) -> dict:
    data = {
        "kind": spec.kind, "number": spec.number, "title": spec.title, "summary": spec.summary,
        "body_html": spec.body_html.strip() + "\n" + _NOTE, "issuing_body": spec.issuing_body,
        "issued_on": spec.issued_on or (out_day - timedelta(days=spec.issued_days_before) if out_day else None),
        "requires_ack": spec.requires_ack, "ack_days": spec.ack_days, "tags": list(spec.tags),
        "audience": {"org_units": [unit.id]}, "owner_unit": unit.id,
    }
    if series_id is not None:
        data.update(series_id=series_id, lesson_no=spec.lesson_no)
    return data


def _backdate(doc: Document, published_at: datetime) -> None:
    """Make a document published now look as if it went out at `published_at` (same transaction)."""
    doc.published_at = doc.sync_at = published_at
    doc.deadline = deadline_for(published_at, doc.ack_days) if doc.requires_ack else None
    doc.created_at = published_at - timedelta(hours=3)   # drafted that morning
    doc.updated_at = published_at
    for notification in db.session.scalars(select(Notification).where(
            Notification.document_id == doc.id, Notification.kind == NotificationKind.PUBLISHED.value)):
        notification.created_at = notification.due_at = published_at
    for version in db.session.scalars(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)):
        version.created_at = published_at


def _short(text: str, width: int = 72) -> str:
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def _line(doc: Document) -> str:
    zone = local_zone()
    when = ""
    if doc.status == Status.SCHEDULED.value:
        when = f", goes out {as_utc(doc.published_at).astimezone(zone):%d/%m/%Y %H:%M}"
    elif doc.status == Status.PUBLISHED.value:
        when = f", published {as_utc(doc.published_at).astimezone(zone):%d/%m/%Y %H:%M}"
    if doc.deadline is not None:
        when += f", deadline {as_utc(doc.deadline).astimezone(zone):%d/%m/%Y}"
    audience = ", ".join(a.org_unit.name for a in doc.audience)
    return (f"  {doc.status:<9} {doc.kind:<9} {doc.number or '—':<11} {_short(doc.title)} "
            f"→ {audience}{when}")


def load_demo_documents() -> list[str]:
    """Publish the demo documents as the demo board account; printable lines saying what was created.

    Does nothing (and says so) if the database already holds documents or has no demo board account.
    """
    if db.session.scalar(select(Document.id).limit(1)) is not None:
        return ["Database already has documents; demo documents not loaded."]
    board = db.session.scalar(select(Member).where(Member.card_number == BOARD_CARD))
    city, ba_dinh = _units()
    if board is None or city is None:
        return [f"No demo board account ({BOARD_CARD}) or city unit; demo documents not loaded."]

    today = utcnow().astimezone(local_zone()).date()
    skipped: list[str] = []
    series = create_series(board, {"title": _SERIES_TITLE, "summary": _SERIES_SUMMARY, "owner_unit": city.id})
    series_id = series.id

    published: list[tuple[int, datetime]] = []
    for spec in _PUBLISHED:
        unit = ba_dinh if spec.audience == "ba_dinh" else city
        if unit is None:
            skipped.append(f"  skipped {spec.number or spec.title}: no unit named {BA_DINH_NAME}")
            continue
        out_day = today - timedelta(days=spec.days_ago)
        doc = create_document(board, _data(spec, unit, out_day, series_id if spec.kind == Kind.STUDY.value else None))
        doc_id = doc.id
        publish_document(board, doc_id)
        published.append((doc_id, _local(out_day, spec.at)))

    out_day = today + timedelta(days=_SCHEDULED.days_ahead)
    scheduled = create_document(board, _data(_SCHEDULED, city, out_day))
    scheduled_id = scheduled.id
    publish_document(board, scheduled_id, publish_at=_local(out_day, _SCHEDULED.at))

    draft_id = create_document(board, _data(_DRAFT, city, None)).id

    # Back to the days they went out, in one transaction (the domain functions commit one by one).
    for doc_id, published_at in published:
        _backdate(db.session.get(Document, doc_id), published_at)
    series = db.session.get(Series, series_id)
    first_out = min((at for _, at in published), default=None)
    if first_out is not None:
        series.created_at = series.updated_at = first_out - timedelta(days=1)
    db.session.commit()

    ids = [doc_id for doc_id, _ in published] + [scheduled_id, draft_id]
    docs = {d.id: d for d in db.session.scalars(select(Document).where(Document.id.in_(ids)))}
    lessons = sum(1 for d in docs.values() if d.series_id == series_id)
    head = (f"Demo documents: {len(docs)} created by {board.card_number} {board.full_name} "
            f"({len(published)} published, 1 scheduled, 1 draft); series «{series.title}» with {lessons} lessons")
    lines = [head] + [_line(docs[i]) for i in ids]
    return lines + skipped
