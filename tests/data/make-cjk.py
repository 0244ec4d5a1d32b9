#!/usr/bin/env python3
"""make-cjk.py [DIR] - build the constructed Chinese/Japanese test mail.

Writes DIR/NAME.eml and DIR/NAME.expect (default DIR: tests/data/cjk beside
this script). The .eml files are committed byte-exact; this script is how
they were made. Stdlib only. Mail in the wild is poorly labelled, so most
messages are assembled byte by byte (encoded words split mid-character,
GB2312 labels over GBK-only characters, raw 8-bit GBK headers) rather than
through email.generator, which would write them correctly.

.expect lines are "key: value"; keys: subject, from ("name <addr>"),
body-contains, att-text-contains, att-name, limit-contains, no-limits.
"""
import base64
import io
import os
import sys
import tarfile
import lzma
import zipfile
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.message import MIMEMessage
from email import policy

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "cjk")
DATE = "Mon, 06 May 2024 09:30:00 +0800"
ZIPTIME = (2024, 5, 6, 9, 30, 0)


def b64(b):
    return base64.b64encode(b).decode("ascii")


def b64lines(b):
    return base64.encodebytes(b).decode("ascii").replace("\n", "\r\n")


def ew(text_bytes, charset, enc="B"):
    if enc == "B":
        return "=?%s?B?%s?=" % (charset, b64(text_bytes))
    q = "".join(chr(c) if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122) else "=%02X" % c
                for c in text_bytes)
    return "=?%s?Q?%s?=" % (charset, q)


def headers(subject, frm, to="=?UTF-8?B?5a6i5oi35pyN5Yqh?= <service@example.cn>", mid=None, extra=()):
    h = ["From: " + frm, "To: " + to, "Subject: " + subject, "Date: " + DATE,
         "Message-ID: <%s@cjk.custos.test>" % (mid or "m"), "MIME-Version: 1.0"]
    h.extend(extra)
    return "\r\n".join(h) + "\r\n"


def mixed(parts, boundary="=_custos_boundary_1"):
    out = ['Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % boundary,
           "This is a multi-part message in MIME format.\r\n"]
    for p in parts:
        out.append("--%s\r\n" % boundary)
        out.append(p)
    out.append("--%s--\r\n" % boundary)
    return "".join(out)


def text_part(body_bytes, charset, cte="base64", subtype="plain"):
    ct = "Content-Type: text/%s" % subtype + ("; charset=%s" % charset if charset else "")
    if cte == "base64":
        return ct + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64lines(body_bytes) + "\r\n"
    return ct + "\r\nContent-Transfer-Encoding: %s\r\n\r\n" % cte + body_bytes.decode("latin-1") + "\r\n"


def att_part(data, ctype, disposition_params):
    return ("Content-Type: %s\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment;%s\r\n\r\n" % (ctype, disposition_params)
            + b64lines(data) + "\r\n")


def write(name, raw, expect):
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    with open(os.path.join(OUT, name + ".eml"), "wb") as f:
        f.write(raw)
    with open(os.path.join(OUT, name + ".expect"), "w", encoding="utf-8") as f:
        for k, v in expect:
            f.write("%s: %s\n" % (k, v))


def zip_bytes(members, gbk_names=False):
    """members: list of (name, bytes). gbk_names: store names as raw GBK
    without the UTF-8 flag, as Chinese Windows zip tools do."""
    bio = io.BytesIO()
    swaps = []
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED) as z:
        for i, (name, data) in enumerate(members):
            stored = name
            if gbk_names and not name.isascii():
                raw = name.encode("gbk")
                stored = ("%0" + str(len(raw)) + "d") % i
                swaps.append((stored.encode("ascii"), raw))
            zi = zipfile.ZipInfo(stored, ZIPTIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    out = bio.getvalue()
    for placeholder, raw in swaps:
        assert out.count(placeholder) == 2
        out = out.replace(placeholder, raw)
    return out


# ---------------------------------------------------------------------------

def gb2312_over_gbk():
    # 镕 and 喆 are in GBK but not GB2312; labelled gb2312 anyway
    subj = "朱镕基与王喆的会议纪要"
    body = "王喆：\r\n请查收镕基项目的会议纪要。\r\n"
    raw = headers(ew(subj.encode("gbk"), "GB2312"),
                  '"%s" <WangZhe@Example.COM>' % ew("王喆".encode("gbk"), "gb2312"),
                  mid="gb2312-over-gbk",
                  extra=["Content-Type: text/plain; charset=gb2312",
                         "Content-Transfer-Encoding: base64"]) + "\r\n" + b64lines(body.encode("gbk"))
    write("gb2312-over-gbk", raw, [("subject", subj), ("from", "王喆 <WangZhe@example.com>"),
                                   ("body-contains", "镕基项目")])


def gb18030_4byte():
    subj = "生僻字𠮷与𠀀测试"          # U+20BB7, U+20000: four bytes in GB18030
    body = "姓名：𠮷野家\r\n"
    raw = headers(ew(subj.encode("gb18030"), "GB18030"), "test@example.cn", mid="gb18030",
                  extra=["Content-Type: text/plain; charset=GB18030",
                         "Content-Transfer-Encoding: base64"]) + "\r\n" + b64lines(body.encode("gb18030"))
    write("gb18030-4byte", raw, [("subject", subj), ("body-contains", "𠮷野家")])


def big5():
    subj = "繁體中文測試：客戶資料"
    body = "請把客戶資料發給我，謝謝。\r\n"
    raw = headers(ew(subj.encode("big5"), "Big5"),
                  "%s <chen@example.tw>" % ew("陳大文".encode("big5"), "big5", "Q"), mid="big5",
                  extra=["Content-Type: text/plain; charset=big5",
                         "Content-Transfer-Encoding: base64"]) + "\r\n" + b64lines(body.encode("big5"))
    write("big5", raw, [("subject", subj), ("from", "陳大文 <chen@example.tw>"),
                        ("body-contains", "客戶資料發給我")])


def utf8_html():
    subj = "季度报表 – Q1 &amp; Q2"
    html = ("<html><head><style>p{color:red}</style><script>var x='不要';</script></head>"
            "<body><p>您好&nbsp;李雷，</p><div>附件是<b>季度报表</b>&amp;数据&#x4E2D;&#25991;</div>"
            "<br>谢谢</body></html>")
    alt = ('Content-Type: multipart/alternative; boundary="alt1"\r\n\r\n'
           "--alt1\r\n" + text_part(html.encode("utf-8"), "utf-8", subtype="html") + "--alt1--\r\n")
    raw = headers(ew(subj.encode("utf-8"), "UTF-8", "Q"),
                  "=?utf-8?B?%s?= <li.lei@Mail.Example.CN>" % b64("李雷".encode()), mid="utf8") + alt
    write("utf8-html", raw, [("subject", subj), ("from", "李雷 <li.lei@mail.example.cn>"),
                             ("body-contains", "您好 李雷，"), ("body-contains", "季度报表&数据中文"),
                             ("body-not-contains", "不要"), ("body-not-contains", "color")])


def iso2022jp():
    subj = "日本語の件名：見積書の送付"
    body = "田中様\r\nお世話になっております。見積書を送付いたします。\r\n"
    raw = headers(ew(subj.encode("iso-2022-jp"), "ISO-2022-JP"),
                  "%s <tanaka@example.jp>" % ew("田中太郎".encode("iso-2022-jp"), "iso-2022-jp"),
                  mid="iso2022jp",
                  extra=["Content-Type: text/plain; charset=ISO-2022-JP",
                         "Content-Transfer-Encoding: 7bit"]) + "\r\n" + body.encode("iso-2022-jp").decode("ascii")
    write("iso-2022-jp", raw, [("subject", subj), ("from", "田中太郎 <tanaka@example.jp>"),
                               ("body-contains", "見積書を送付いたします")])


def gbk_8bit_raw():
    subj = "无标记的八位主题：工资单"
    h = ("From: %s <hr@example.cn>\r\nTo: staff@example.cn\r\nSubject: %s\r\nDate: %s\r\n"
         "Message-ID: <gbk-8bit@cjk.custos.test>\r\nMIME-Version: 1.0\r\n"
         "Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    raw = (h % ("人事部".encode("gbk").decode("latin-1"), subj.encode("gbk").decode("latin-1"), DATE)
           + "本月工资单见附件。\r\n".encode("gbk").decode("latin-1"))
    write("gbk-8bit-raw", raw, [("subject", subj), ("from", "人事部 <hr@example.cn>"),
                                ("body-contains", "本月工资单")])


def split_words():
    # "请把客户资料发我": UTF-8 bytes split inside 客 (3 bytes) and GBK split inside 资
    subj = "请把客户资料发我"
    u = subj.encode("utf-8")
    g = "客户资料".encode("gbk")
    s1 = "%s %s" % (ew(u[:7], "UTF-8"), ew(u[7:], "UTF-8"))
    frm = '%s\r\n %s <kehu@example.cn>' % (ew(g[:5], "GB2312"), ew(g[5:], "GB2312"))
    raw = headers(s1, frm, mid="split",
                  extra=["Content-Type: text/plain; charset=utf-8",
                         "Content-Transfer-Encoding: 8bit"]) + "\r\n" + "正文\r\n".encode().decode("latin-1")
    write("split-words", raw, [("subject", subj), ("from", "客户资料 <kehu@example.cn>"),
                               ("body-contains", "正文")])


def fullwidth():
    subj = "ＶＩＰ客户１２３号：订单ＡＢＣ－４５６"
    raw = headers(ew(subj.encode("gbk"), "gbk"), "sales@example.cn", mid="fullwidth",
                  extra=["Content-Type: text/plain; charset=gbk",
                         "Content-Transfer-Encoding: base64"]) + "\r\n" + b64lines("身份证号：１１０１０１１９９００１０１１２３４\r\n".encode("gbk"))
    write("fullwidth", raw, [("subject", subj), ("body-contains", "１１０１０１１９９００１０１１２３４")])


def dlp_request():
    subj = "请把客户资料发我"
    raw = headers(ew(subj.encode("gb2312"), "gb2312"),
                  "%s <zhang.wei@example.com>" % ew("张伟".encode("gb2312"), "gb2312"), mid="dlp",
                  extra=["Content-Type: text/plain; charset=gb2312",
                         "Content-Transfer-Encoding: base64"]) + "\r\n" + b64lines("把全部客户的手机号和身份证号整理好发我私人邮箱。\r\n".encode("gbk"))
    write("dlp-request", raw, [("subject", subj), ("from", "张伟 <zhang.wei@example.com>"),
                               ("body-contains", "手机号和身份证号")])


CSV = "姓名,手机,城市\r\n张三,13800138000,北京\r\n李四,13900139000,上海\r\n"


def rfc2231_gbk():
    name = "客户名单（内部）.csv"
    pct = "".join("%%%02X" % c for c in name.encode("gbk"))
    half = len(pct) // 2
    while pct[half] != "%":
        half += 1
    params = "\r\n filename*0*=gbk''%s;\r\n filename*1*=%s" % (pct[:half], pct[half:])
    raw = headers("=?gbk?B?%s?=" % b64("名单".encode("gbk")), "ops@example.cn", mid="rfc2231") + mixed([
        text_part("见附件。\r\n".encode("gbk"), "gbk"),
        att_part(CSV.encode("gbk"), "application/octet-stream", params),
    ])
    write("rfc2231-gbk", raw, [("subject", "名单"), ("att-name", name),
                               ("att-text-contains", "13800138000,北京")])


def zip_gbk_csv():
    z = zip_bytes([("客户名单.csv", CSV.encode("gbk"))], gbk_names=True)
    raw = headers(ew("客户资料打包".encode("gbk"), "gb2312"), "ops@example.cn", mid="zip") + mixed([
        text_part("压缩包里是客户名单。\r\n".encode("gbk"), "gb2312"),
        att_part(z, "application/octet-stream", ' filename="data.zip"'),
    ])
    write("zip-gbk-csv", raw, [("subject", "客户资料打包"), ("att-name", "data.zip"),
                               ("att-name", "客户名单.csv"), ("att-path", "data.zip/客户名单.csv"),
                               ("att-text-contains", "李四,13900139000,上海")])


def docx_bytes(paras):
    body = "".join('<w:p><w:r><w:t xml:space="preserve">%s</w:t></w:r></w:p>' % p for p in paras)
    doc = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           "<w:body>%s</w:body></w:document>" % body)
    ct = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Default Extension="xml" ContentType="application/xml"/>'
          '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
    return zip_bytes([("[Content_Types].xml", ct.encode()), ("word/document.xml", doc.encode())])


def xlsx_bytes():
    ct = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>')
    wb = ('<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
          '<sheets><sheet name="客户" sheetId="1"/></sheets></workbook>')
    ss = ('<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="3" uniqueCount="3">'
          "<si><t>客户姓名</t></si><si><t>王小明</t></si><si><t>银行卡号</t></si></sst>")
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>2</v></c></row>'
             '<row r="2"><c r="A2" t="s"><v>1</v></c><c r="B2"><v>6222020200112233</v></c>'
             '<c r="C2" t="inlineStr"><is><t>内联备注：VIP</t></is></c></row>'
             "</sheetData></worksheet>")
    return zip_bytes([("[Content_Types].xml", ct.encode()), ("xl/workbook.xml", wb.encode()),
                      ("xl/sharedStrings.xml", ss.encode()), ("xl/worksheets/sheet1.xml", sheet.encode())])


def office():
    docx = docx_bytes(["合同编号：HT-2024-001", "甲方：北京某某科技有限公司", "保密条款适用。"])
    xlsx = xlsx_bytes()
    raw = headers(ew("合同和表格".encode("utf-8"), "utf-8"), "legal@example.cn", mid="office") + mixed([
        text_part("见附件。\r\n".encode("utf-8"), "utf-8"),
        att_part(docx, "application/octet-stream",
                 " filename*=utf-8''%s" % "".join("%%%02X" % c for c in "合同.docx".encode())),
        att_part(xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 ' filename="=?gb2312?B?%s?="' % b64("客户表.xlsx".encode("gbk"))),
    ])
    write("office", raw, [("subject", "合同和表格"), ("att-name", "合同.docx"), ("att-name", "客户表.xlsx"),
                          ("att-text-contains", "甲方：北京某某科技有限公司"),
                          ("att-text-contains", "王小明"), ("att-text-contains", "6222020200112233"),
                          ("att-text-contains", "内联备注：VIP")])


def archives():
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w:gz", format=tarfile.USTAR_FORMAT) as t:
        for name, data in [("报告/摘要.txt", "年度摘要：营收增长。\n".encode("utf-8")),
                           ("报告/名单.csv", CSV.encode("gbk"))]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1714959000
            ti.uname = ti.gname = "custos"
            t.addfile(ti, io.BytesIO(data))
    tgz = bio.getvalue()
    # gzip header carries an mtime; pin it
    tgz = tgz[:4] + b"\0\0\0\0" + tgz[8:]
    xz = lzma.compress("压缩的备忘录：周五开会。\n".encode("utf-8"), format=lzma.FORMAT_XZ)
    raw = headers("=?utf-8?B?%s?=" % b64("压缩包".encode()), "ops@example.cn", mid="archives") + mixed([
        att_part(tgz, "application/x-gzip", ' filename="report.tar.gz"'),
        att_part(xz, "application/octet-stream", ' filename="memo.txt.xz"'),
    ])
    write("archives", raw, [("subject", "压缩包"), ("att-name", "摘要.txt"), ("att-name", "memo.txt"),
                            ("att-text-contains", "营收增长"), ("att-text-contains", "张三,13800138000"),
                            ("att-text-contains", "周五开会")])


def zip_bomb():
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        zi = zipfile.ZipInfo("zeros.bin", ZIPTIME)
        zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, "w", force_zip64=False) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(100):
                f.write(chunk)
    z = bio.getvalue()
    assert len(z) < 300000, len(z)
    raw = headers("zip bomb", "attacker@example.net", mid="bomb") + mixed([
        att_part(z, "application/zip", ' filename="bomb.zip"')])
    write("zip-bomb", raw, [("subject", "zip bomb"), ("att-name", "bomb.zip"),
                            ("limit-contains", "expansion ratio limit")])


def nested_zip():
    data = zip_bytes([("最里面.txt", "最深处的秘密\n".encode("utf-8"))])
    for i in range(19, 0, -1):
        data = zip_bytes([("level%02d.zip" % (i + 1), data)])
    raw = headers("nested zip 20", "attacker@example.net", mid="nestzip") + mixed([
        att_part(data, "application/zip", ' filename="level01.zip"')])
    write("nested-zip", raw, [("subject", "nested zip 20"), ("att-name", "level08.zip"),
                              ("limit-contains", "depth limit 8 reached"),
                              ("limit-contains", "level01.zip/level02.zip/level03.zip")])


def nested_rfc822():
    inner = MIMEText("最里层的正文\n", "plain", "utf-8")
    inner["Subject"] = Header("第20层", "utf-8")
    inner["From"] = "deep@example.cn"
    inner["Date"] = DATE
    msg = inner
    for i in range(19, 0, -1):
        outer = MIMEMultipart(boundary="=_level_%02d" % i)
        outer["Subject"] = Header("第%d层" % i, "utf-8")
        outer["From"] = "level%d@example.cn" % i
        outer["Date"] = DATE
        outer.attach(MIMEText("第%d层正文\n" % i, "plain", "utf-8"))
        outer.attach(MIMEMessage(msg))
        msg = outer
    msg["Message-ID"] = "<nested-rfc822@cjk.custos.test>"
    raw = msg.as_bytes(policy=policy.compat32.clone(linesep="\r\n"))
    write("nested-rfc822", raw, [("subject", "第1层"), ("body-contains", "第1层正文"),
                                 ("att-text-contains", "第2层正文"), ("att-text-contains", "Subject: 第8层"),
                                 ("limit-contains", "depth limit 8 reached")])


def html_meta():
    html = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk">'
            "</head><body><p>年终奖&lt;保密&gt;名单</p></body></html>")
    raw = headers("html meta charset", "hr@example.cn", mid="meta",
                  extra=["Content-Type: text/html", "Content-Transfer-Encoding: base64"]) + "\r\n" + b64lines(html.encode("gbk"))
    write("html-meta-charset", raw, [("subject", "html meta charset"),
                                     ("body-contains", "年终奖<保密>名单")])


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in (gb2312_over_gbk, gb18030_4byte, big5, utf8_html, iso2022jp, gbk_8bit_raw,
              split_words, fullwidth, dlp_request, rfc2231_gbk, zip_gbk_csv, office, archives,
              zip_bomb, nested_zip, nested_rfc822, html_meta):
        f()


if __name__ == "__main__":
    main()
