#!/usr/bin/env python3
"""make-scenarios-private.py [DIR] - the scenarios of payment-details, self-forward,
evasion and customer-contact-private, beside those of make-scenarios.py

Same format and helpers (this runs make-scenarios.py first, which writes its
own scenarios again, byte for byte the same). Every message here has its own
Message-ID and Date, so the output does not depend on the other set.
The encrypted zip is built here with the traditional PKWARE (ZipCrypto)
cipher and a fixed encryption header, so it is deterministic too (Python's
zipfile cannot encrypt; a zip made with `zip -P` at test time is in
tests/test-det-rules.c). Run: python3 tests/detect/make-scenarios-private.py
"""
import importlib.util
import os
import struct
import sys
import zlib

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "make_scenarios", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "make-scenarios.py"))
g = importlib.util.module_from_spec(_spec)
sys.argv = [sys.argv[0], HERE]
_spec.loader.exec_module(g)

message, text_part, file_part, rfc822_part = g.message, g.text_part, g.file_part, g.rfc822_part
addr, scenario, zip_bytes = g.addr, g.scenario, g.zip_bytes
n = [0]


def msg(frm, to, subject, parts, **kw):
    """A message with its own Message-ID and a fixed date."""
    n[0] += 1
    kw.setdefault("msgid", "prv-%03d@scn.example" % n[0])
    kw.setdefault("date", "Fri, 14 Jun 2024 15:%02d:00 +0800" % n[0])
    return message(frm, to, subject, parts, **kw)


# ---- a zip whose member is encrypted (ZipCrypto), deterministic ---------------------

CRCTAB = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
    CRCTAB.append(c)


def zipcrypto(data, password, crc):
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(b):
        keys[0] = (keys[0] >> 8) ^ CRCTAB[(keys[0] ^ b) & 0xFF]
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = (keys[2] >> 8) ^ CRCTAB[(keys[2] ^ (keys[1] >> 24)) & 0xFF]

    def stream():
        t = (keys[2] | 2) & 0xFFFF
        return ((t * (t ^ 1)) >> 8) & 0xFF

    for b in password:
        update(b)
    header = bytes(range(1, 12)) + bytes([(crc >> 24) & 0xFF])
    out = bytearray()
    for b in header + data:
        out.append(b ^ stream())
        update(b)
    return bytes(out)


def encrypted_zip(members, password=b"8888"):
    """Stored members, each encrypted (general purpose bit 0 set)."""
    local, central = b"", b""
    for name, data in members:
        data = data.encode() if isinstance(data, str) else data
        nm = name.encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        enc = zipcrypto(data, password, crc)
        flags = 0x1 | 0x800
        dostime, dosdate = (9 << 11) | (30 << 5), ((2024 - 1980) << 9) | (6 << 5) | 12
        off = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, dostime, dosdate, crc,
                             len(enc), len(data), len(nm), 0) + nm + enc
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 0, dostime,
                               dosdate, crc, len(enc), len(data), len(nm), 0, 0, 0, 0, 0,
                               off) + nm
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(local), 0)
    return local + central + end


LI = addr("李娜", "li.na@corp.example")
SUN = addr("孙丽", "sun.li@corp.example")
JOHN = addr("John Smith", "john.smith@corp.example")
WANG = addr("Wang Wei", "wang.wei@corp.example")

# ---- payment-details ------------------------------------------------------------------

body = ("王经理：\n\n因公司账户调整，本批货款请汇至以下账户：\n户名：李娜\n开户行：招商银行深圳分行\n"
        "账号：6222 0212 3456 1236\n\n汇款后请告知，谢谢。\n李娜\n")
scenario("pay-card-zh-gbk-b64", "a rep asks the customer to pay into her own card (GBK, "
         "base64): a card number that is not the company's and a person as payee",
         msg(addr("李娜", "li.na@corp.example", "gbk"), "purchasing@xingchen.example",
             "货款支付账户变更", text_part(body, "gbk", "base64"), charset="gbk"),
         "li.na@corp.example", ["purchasing@xingchen.example"], ["payment-details"])

body = ("Dear Hank,\n\nplease remit the June invoice to my account this time:\n"
        "Beneficiary: John Smith\nIBAN: GB82 WEST 1234 5698 7654 32\nSWIFT: WESTGB2L\n\n"
        "Thanks,\nJohn\n")
scenario("pay-iban-en-qp", "an IBAN that is not the company's, payee a person (English, "
         "quoted-printable)",
         msg(JOHN, "ops@globex.example", "Payment details", text_part(body, "utf-8",
                                                                     "quoted-printable")),
         "john.smith@corp.example", ["ops@globex.example"], ["payment-details"])

body = ("周经理：\n\n本月货款请转账到新卡：\n"
        "６２１７\u200b００３１\u200b２３４５\u00ad６７８２\n谢谢\n")
scenario("pay-fullwidth-utf8-html", "a card number in full-width digits with zero-width "
         "characters and soft hyphens, in HTML (UTF-8)",
         msg(LI, "zhou.min@hongyuan.example", "付款",
             text_part("<html><body><p>" + body.replace("\n", "<br>") + "</p></body></html>",
                       "utf-8", "quoted-printable", "html")),
         "li.na@corp.example", ["zhou.min@hongyuan.example"], ["payment-details"])

inv = ("发票 INV-2024-0614\n\n金额：人民币 86,000.00 元\n请汇款至：\n户名：Corp Example 有限公司\n"
       "开户行：中国农业银行 北京分行\n账号：6228 4800 1234 5678 903\n"
       "或 IBAN: DE89 3704 0044 0532 0130 00 (Corp Example GmbH)\n")
scenario("neg-pay-company-invoice", "an invoice with the company's own card account and IBAN "
         "(GB2312 body, invoice text in a CSV attachment)",
         msg(addr("李娜", "li.na@corp.example", "gb2312"), "purchasing@xingchen.example",
             "发票 INV-2024-0614",
             [text_part("王经理：\n\n附件是6月发票，请按发票上的账户付款。\n\n李娜\n", "gb2312",
                        "base64"),
              file_part("invoice.csv", ("项目,内容\n" + inv.replace("\n", "\n,")).encode("gbk"),
                        "text/csv; charset=gbk")], charset="gb2312"),
         "li.na@corp.example", ["purchasing@xingchen.example"], [])

scenario("neg-pay-order-number", "an order number that looks like a card number but fails "
         "Luhn, next to 付款",
         msg(LI, "purchasing@xingchen.example", "订单付款",
             text_part("王经理：\n\n订单号 6222021234561234 已收到付款，谢谢。\n李娜\n", "utf-8",
                       "base64")),
         "li.na@corp.example", ["purchasing@xingchen.example"], [])

reply = ("Hank,\n\nthe refund went out today.\n\nJohn\n\n-----Original Message-----\n"
         "From: Hank Scorpio <hank@globex.example>\nSent: Thursday, June 13, 2024 9:00 AM\n"
         "To: John Smith <john.smith@corp.example>\nSubject: Refund\n\n"
         "Please refund to our account: Account name: Hank Scorpio\n"
         "IBAN GB82 WEST 1234 5698 7654 32\n")
scenario("neg-pay-quoted-customer", "a reply quoting the customer's own refund account",
         msg(JOHN, "hank@globex.example", "RE: Refund", text_part(reply, "utf-8",
                                                                  "quoted-printable")),
         "john.smith@corp.example", ["hank@globex.example"], [])

# ---- self-forward -----------------------------------------------------------------------

scenario("self-name-attachment", "a rep sends a work file to sunli88@163.com (her name in "
         "pinyin, a year after it)",
         msg(SUN, "sunli88@163.com", "周报",
             [text_part("\n", "utf-8", "base64"),
              file_part("周报-第24周.txt", "本周拜访3家，完成报价2份。\n".encode(), "text/plain")]),
         "sun.li@corp.example", ["sunli88@163.com"], ["self-forward"])

fwd = ("\n-----原始邮件-----\n发件人: 赵刚 <zhao.gang@corp.example>\n发送时间: 2024年6月13日 18:00\n"
       "收件人: 销售部\n主题: 下半年销售目标\n\n各位：下半年目标见附件，请勿外传。\n")
scenario("self-mobile-fwd-gbk", "an internal memo forwarded to the rep's mobile number "
         "mailbox at 139.com (GBK, quoted-printable)",
         msg(addr("李娜", "li.na@corp.example", "gbk"), "13800138000@139.com",
             "转发: 下半年销售目标", text_part(fwd, "gbk", "quoted-printable"), charset="gbk"),
         "li.na@corp.example", ["13800138000@139.com"], ["self-forward"])

scenario("self-registered-pdf", "a PDF to the rep's registered personal gmail address",
         msg(WANG, "wang.wei.home@gmail.com", "price list",
             [text_part("for home\n", "utf-8", "7bit"),
              file_part("pricelist-2024.pdf", b"%PDF-1.4\n% price list\n%%EOF\n",
                        "application/pdf")]),
         "wang.wei@corp.example", ["wang.wei.home@gmail.com"], ["self-forward"])

fwd = ("FYI\n\n---------- Forwarded message ---------\nFrom: Zhao Gang <zhao.gang@corp.example>\n"
       "Date: Thu, Jun 13, 2024\nSubject: Q3 targets\n\nTeam, Q3 targets attached. Internal only.\n")
scenario("self-name-en-fwd", "an internal mail forwarded to jsmith1985@gmail.com (initial and "
         "surname, English)",
         msg(JOHN, "jsmith1985@gmail.com", "Fwd: Q3 targets", text_part(fwd, "utf-8", "7bit")),
         "john.smith@corp.example", ["jsmith1985@gmail.com"], ["self-forward"])

scenario("neg-self-friend-webmail", "a rep sends a photo to a friend's webmail (not her name)",
         msg(SUN, "wangxiaohong@163.com", "照片",
             [text_part("上次聚会的照片\n", "utf-8", "base64"),
              file_part("聚会.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "image/png")]),
         "sun.li@corp.example", ["wangxiaohong@163.com"], [])

# ---- evasion ------------------------------------------------------------------------------

ez = encrypted_zip([("客户名单.xlsx", b"PK\x03\x04 not readable without the password"),
                    ("说明.txt", "密码另发".encode())])
scenario("evasion-encrypted-zip", "an encrypted zip to a 163.com address",
         msg(LI, "dragon88@163.com", "资料",
             [text_part("密码微信发你\n", "utf-8", "base64"),
              file_part("资料.zip", ez, "application/zip")]),
         "li.na@corp.example", ["dragon88@163.com"], ["evasion"])

body = ("资料都在网盘里：\n链接: https://pan.baidu.com/s/1AbCdEfGhIjK 提取码: x7k9\n"
        "--来自百度网盘超级会员的分享\n")
scenario("evasion-cloud-link-gb2312-qp", "a Baidu Pan link with its 提取码 to a 126.com "
         "address (GB2312, quoted-printable)",
         msg(addr("孙丽", "sun.li@corp.example", "gb2312"), "xl_2024@126.com", "资料",
             text_part(body, "gb2312", "quoted-printable"), charset="gb2312"),
         "sun.li@corp.example", ["xl_2024@126.com"], ["evasion"])

body = ("Here you go: https://www.dropbox.com/t/Qx7LmN2pR\nPassword: Summer2024\n")
scenario("evasion-cloud-link-en", "a Dropbox transfer with its password to gmail (English)",
         msg(JOHN, "deals.hunter@gmail.com", "files", text_part(body, "utf-8", "7bit")),
         "john.smith@corp.example", ["deals.hunter@gmail.com"], ["evasion"])

scenario("evasion-disguised-jpg", "a zip named .jpg to an outside company",
         msg(LI, "agent@otherco.example", "图片",
             [text_part("见图。\n", "utf-8", "base64"),
              file_part("scan.jpg", zip_bytes([("notes.txt", "hello\n")]), "image/jpeg")]),
         "li.na@corp.example", ["agent@otherco.example"], ["evasion"])

scenario("neg-evasion-link-no-code", "a public Baidu Pan link without an access code to "
         "webmail (a product video)",
         msg(SUN, "xl_2024@126.com", "视频",
             text_part("产品视频：https://pan.baidu.com/s/1PublicVid0\n", "utf-8", "base64")),
         "sun.li@corp.example", ["xl_2024@126.com"], [])

scenario("neg-evasion-encrypted-to-customer", "an encrypted zip to the customer (their "
         "drawings, password by phone)",
         msg(LI, "purchasing@xingchen.example", "图纸",
             [text_part("王经理：图纸见附件，密码电话告知。\n", "utf-8", "base64"),
              file_part("图纸.zip", encrypted_zip([("CX-200.dwg", b"AC1027 drawing")]),
                        "application/zip")]),
         "li.na@corp.example", ["purchasing@xingchen.example"], [])

scenario("neg-evasion-png-as-jpg", "a PNG named .jpg (common, harmless) to an outside company",
         msg(LI, "agent@otherco.example", "logo",
             [text_part("logo\n", "utf-8", "7bit"),
              file_part("logo.jpg", b"\x89PNG\r\n\x1a\n" + bytes(32), "image/jpeg")]),
         "li.na@corp.example", ["agent@otherco.example"], [])

# ---- customer-contact-private (inbound) --------------------------------------------------------

scenario("ccp-cc-personal-gb2312", "a customer copies the rep's registered private QQ address "
         "(inbound, GB2312)",
         msg(addr("王芳", "purchasing@xingchen.example", "gb2312"), LI, "下批订单",
             text_part("李娜：下批订单以后发你私人邮箱。\n王芳\n", "gb2312", "base64"),
             cc="lina1990@qq.com", charset="gb2312"),
         "purchasing@xingchen.example", ["li.na@corp.example"], ["customer-contact-private"])

scenario("ccp-to-personal-en", "a customer writes To the leaver's private 163.com address, "
         "the work address only in Cc (English)",
         msg(addr("Mary Buyer", "buyer@acme.example"), "wangwei@163.com", "next order",
             text_part("Wang Wei, as agreed we will deal with you directly.\n", "utf-8",
                       "quoted-printable"), cc=WANG),
         "buyer@acme.example", ["wang.wei@corp.example"], ["customer-contact-private"])

scenario("neg-ccp-work-only", "a customer writes to the rep's work address only",
         msg(addr("周敏", "zhou.min@hongyuan.example"), LI, "对账",
             text_part("李娜：请核对6月对账单。\n", "utf-8", "base64")),
         "zhou.min@hongyuan.example", ["li.na@corp.example"], [])

scenario("neg-ccp-friend", "a friend (not a customer) copies the rep's private address",
         msg(addr("老同学", "oldfriend@sina.com"), LI, "聚会",
             text_part("周六聚会别忘了。\n", "utf-8", "base64"), cc="lina1990@qq.com"),
         "oldfriend@sina.com", ["li.na@corp.example"], [])

# ---- RAR 5 (WinRAR's own format), deterministic -----------------------------------------
# libarchive reads RAR 5 but reports no encryption; msg-attach.c reads the headers.


def rar5_vint(v):
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def rar5_header(htype, fields, extra=None, dsize=0):
    h = rar5_vint(htype) + rar5_vint((1 if extra is not None else 0) | (2 if dsize else 0))
    if extra is not None:
        h += rar5_vint(len(extra))
    if dsize:
        h += rar5_vint(dsize)
    h += fields + (extra or b"")
    body = rar5_vint(len(h)) + h
    return struct.pack("<I", zlib.crc32(body)) + body


def rar5(name, data, encrypted):
    """One stored member; encrypted: a file encryption record (AES-256, salt
    and IV) and its data as blocks of 16 bytes of noise."""
    nb = name.encode("utf-8")
    f = (rar5_vint(0x4) + rar5_vint(len(data)) + rar5_vint(0o100644) +
         struct.pack("<I", zlib.crc32(data)) + rar5_vint(0) + rar5_vint(1) +
         rar5_vint(len(nb)) + nb)
    extra, body = None, data
    if encrypted:
        rec = rar5_vint(1) + rar5_vint(0) + rar5_vint(0) + bytes([15]) + \
            bytes((i * 73 + 5) & 0xFF for i in range(32))
        extra = rar5_vint(len(rec)) + rec
        body = bytes((i * 73 + 7) & 0xFF for i in range((len(data) + 15) // 16 * 16))
    return (b"Rar!\x1a\x07\x01\x00" + rar5_header(1, rar5_vint(0)) +
            rar5_header(2, f, extra, len(body)) + body + rar5_header(5, rar5_vint(0)))


scenario("evasion-encrypted-rar5-gbk", "a RAR 5 archive with an encrypted member to a qq.com "
         "address (GBK)",
         msg(addr("李娜", "li.na@corp.example", "gbk"), "kh_ziliao@qq.com", "资料",
             [text_part("解压密码微信发你。\n", "gbk", "base64"),
              file_part("资料.rar", rar5("客户名单.xlsx", b"PK\x03\x04 not readable", True),
                        "application/vnd.rar")], charset="gbk"),
         "li.na@corp.example", ["kh_ziliao@qq.com"], ["evasion"])

scenario("neg-evasion-plain-rar5", "a RAR 5 archive without a password (holiday photos list) "
         "to a qq.com address",
         msg(LI, "kh_ziliao@qq.com", "照片",
             [text_part("照片清单见附件。\n", "utf-8", "base64"),
              file_part("照片.rar", rar5("清单.txt", "海边 12 张\n".encode(), False),
                        "application/vnd.rar")]),
         "li.na@corp.example", ["kh_ziliao@qq.com"], [])
