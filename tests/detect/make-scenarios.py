#!/usr/bin/env python3
"""make-scenarios.py [DIR] - the labelled detector scenarios of tests/detect/

Writes DIR/scenarios/NAME.eml (the raw message) and NAME.env (the envelope:
sender, rcpt, auth lines, and the categories expected, "expect:" empty =
must not be flagged), and DIR/archive/*.eml, the inbound customer mail the
test archives before it runs the scenarios. Constructed mail of the fixture
directory in DIR/directory (corp.example and its customers), English and
Chinese, GB2312/GBK/UTF-8, base64 and quoted-printable, attachments in zip,
xlsx, vCard, CSV and message/rfc822. Deterministic: the same bytes every
run (fixed boundaries, dates, zip member times). The output is checked in;
run this again after changing it: python3 tests/detect/make-scenarios.py
"""
import base64
import html
import io
import os
import quopri
import sys
import zipfile
from email.header import Header

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
ZIPTIME = (2024, 6, 12, 9, 30, 0)
seq = [0]


def hdr(value, charset="utf-8"):
    """A header value, RFC 2047-encoded if it is not ASCII."""
    if value.isascii():
        return value
    return Header(value, charset).encode()


def addr(name, a, charset="utf-8"):
    return "%s <%s>" % (hdr(name, charset), a) if name else a


def body_bytes(text, charset, cte):
    raw = text.replace("\n", "\r\n").encode(charset)
    if cte == "base64":
        enc = base64.encodebytes(raw).decode().replace("\n", "\r\n")
    elif cte == "quoted-printable":
        enc = quopri.encodestring(raw).decode().replace("\r\n", "\n").replace("\n", "\r\n")
        enc = enc.replace("=0D\r\n", "\r\n")
    else:
        enc = raw.decode(charset)
    return enc


def text_part(text, charset="utf-8", cte="base64", subtype="plain"):
    return ("Content-Type: text/%s; charset=\"%s\"\r\nContent-Transfer-Encoding: %s\r\n\r\n%s"
            % (subtype, charset, cte, body_bytes(text, charset, cte)))


def file_part(name, data, ctype):
    b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return ("Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; "
            "filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s"
            % (ctype, hdr(name), hdr(name), b64))


def rfc822_part(raw):
    return "Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" + raw


def message(frm, to, subject, parts, cc=None, msgid=None, extra=None, charset="utf-8",
            date="Wed, 12 Jun 2024 10:%02d:00 +0800"):
    """A message: parts is one part (string) or a list (multipart/mixed)."""
    seq[0] += 1
    h = ["From: %s" % frm, "To: %s" % to]
    if cc:
        h.append("Cc: %s" % cc)
    h.append("Subject: %s" % hdr(subject, charset))
    h.append("Date: %s" % (date % (seq[0] % 60) if "%" in date else date))
    h.append("Message-ID: <%s>" % (msgid or "scn-%03d@corp.example" % seq[0]))
    h.append("MIME-Version: 1.0")
    for k, v in (extra or []):
        h.append("%s: %s" % (k, v))
    if isinstance(parts, str):
        return "\r\n".join(h) + "\r\n" + parts
    b = "=_custos_scn_%03d" % seq[0]
    h.append("Content-Type: multipart/mixed; boundary=\"%s\"" % b)
    out = "\r\n".join(h) + "\r\n\r\n"
    for p in parts:
        out += "--%s\r\n%s\r\n" % (b, p)
    return out + "--%s--\r\n" % b


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, ZIPTIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.flag_bits |= 0x800          # UTF-8 names
            z.writestr(info, data)
    return buf.getvalue()


def xlsx_bytes(rows):
    """A minimal xlsx: one sheet, every cell an inline string."""
    def col(i):
        return chr(ord("A") + i)
    cells = []
    for r, row in enumerate(rows, 1):
        cs = "".join('<c r="%s%d" t="inlineStr"><is><t>%s</t></is></c>'
                     % (col(i), r, v.replace("&", "&amp;").replace("<", "&lt;"))
                     for i, v in enumerate(row))
        cells.append('<row r="%d">%s</row>' % (r, cs))
    sheet = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns='
             '"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>%s'
             '</sheetData></worksheet>' % "".join(cells))
    ct = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://'
          'schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
          'ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default '
          'Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml"'
          ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main'
          '+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
          'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns='
            '"http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id='
            '"rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>')
    wb = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="http://'
          'schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.'
          'openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="客户" '
          'sheetId="1" r:id="rId1"/></sheets></workbook>')
    wbrels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns='
              '"http://schemas.openxmlformats.org/package/2006/relationships"><Relationship '
              'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
              'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
    return zip_bytes([("[Content_Types].xml", ct), ("_rels/.rels", rels),
                      ("xl/workbook.xml", wb), ("xl/_rels/workbook.xml.rels", wbrels),
                      ("xl/worksheets/sheet1.xml", sheet)])


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def scenario(name, desc, raw, sender, rcpts, expect, auth=None):
    env = "# %s\nsender: %s\n" % (desc, sender)
    if auth:
        env += "auth: %s\n" % auth
    for r in rcpts:
        env += "rcpt: %s\n" % r
    env += "expect: %s\n" % " ".join(expect)
    write(os.path.join(HERE, "scenarios", name + ".eml"), raw)
    write(os.path.join(HERE, "scenarios", name + ".env"), env)


def archived(name, raw):
    write(os.path.join(HERE, "archive", name + ".eml"), raw)


# ---- the customers' data, as sales staff keep it ------------------------------------

CUSTOMER_ROWS = [
    ["客户", "联系人", "邮箱", "电话"],
    ["北京星辰科技有限公司", "王芳", "wang.fang@xingchen.example", "+86 139 1111 2222"],
    ["北京星辰科技有限公司", "采购部", "purchasing@xingchen.example", "010-8888-0001"],
    ["上海宏远贸易有限公司", "周敏", "zhou.min@hongyuan.example", "136 2222 3333"],
    ["广州华南电子有限公司", "林华", "lin.hua@huanan-elec.example", "+86 137 3333 4444"],
    ["成都天府物流有限公司", "陈宇", "chen.yu@tianfu-log.example", "158-4444-5555"],
]

# ---- archived inbound customer mail (ingested first) ------------------------------------

PO_BODY = ("李娜您好：\n\n附件是我司6月份的采购订单 PO-2024-0612，请确认交期。\n"
           "数量：2000 套，单价按上次报价。\n\n王芳\n北京星辰科技有限公司 采购部\n"
           "电话：+86 139 1111 2222\n")
A1 = message(addr("王芳", "purchasing@xingchen.example", "gb2312"),
             addr("李娜", "li.na@corp.example", "gb2312"), "采购订单 PO-2024-0612",
             text_part(PO_BODY, "gb2312", "base64"), msgid="po-2024-0612@xingchen.example",
             charset="gb2312", date="Wed, 12 Jun 2024 09:30:00 +0800")
archived("a1-xingchen-po", A1)

QUOTE_BODY = ("Hello Wang Wei,\n\nCould you send us your best price for 5,000 units of the\n"
              "CX-200 controller, delivery Q3? We need the quote by Friday.\n\n"
              "Best regards,\nMary Buyer\nAcme Trading, Ltd.\n")
A2 = message(addr("Mary Buyer", "buyer@acme.example"), addr("Wang Wei", "wang.wei@corp.example"),
             "Quote request CX-200", text_part(QUOTE_BODY, "utf-8", "quoted-printable"),
             msgid="quote-req-77@acme.example", date="Mon, 10 Jun 2024 08:15:00 -0700")
archived("a2-acme-quote", A2)

SHIP_BODY = ("李娜、各位：\n\n第5批货物已于今天发出，物流由合作方负责跟进。\n\n周敏\n上海宏远贸易有限公司\n")
A3 = message(addr("周敏", "zhou.min@hongyuan.example"), addr("李娜", "li.na@corp.example"),
             "第5批发货通知", text_part(SHIP_BODY, "utf-8", "base64"),
             cc="partner@logistics-partner.example", msgid="hy-ship-5@hongyuan.example",
             date="Tue, 11 Jun 2024 16:00:00 +0800")
archived("a3-hongyuan-shipping", A3)

CONTRACT_BODY = ("John,\n\nPlease find below the terms we agreed for the 2024-2026 supply "
                 "contract.\nPrice: USD 41.50 per unit, volume 120,000 units a year, payment "
                 "60 days net.\nExclusivity for the North American market.\n\nHank\nGlobex "
                 "Corporation, Operations\n")
A4_HDRS = dict(frm=addr("Hank Scorpio", "hank@globex.example"),
               to=addr("John Smith", "john.smith@corp.example"),
               subject="Supply contract 2024-2026: agreed terms",
               parts=text_part(CONTRACT_BODY, "utf-8", "quoted-printable"),
               msgid="globex-contract-9@globex.example", date="Thu, 06 Jun 2024 11:00:00 -0500")
A4 = message(**A4_HDRS)
archived("a4-globex-contract", A4)

A5 = message(addr("李娜", "li.na@corp.example"), "purchasing@xingchen.example",
             "报价单 Q-3", text_part("王经理：\n\n报价单见附件。\n\n李娜\n", "utf-8", "base64"),
             msgid="ln-quote-3@corp.example", date="Mon, 03 Jun 2024 14:00:00 +0800")
archived("a5-outbound-quote", A5)

SPEC_BODY = ("孙丽您好：\n\n我司下季度的芯片采购计划如下，请按此备货：\n"
             "HN-7 主控芯片 12 万片，单价 3.20 美元；HN-9 电源芯片 8 万片，单价 1.10 美元；\n"
             "交货分三批，9月、10月、11月各一批。此计划仅供贵司内部使用，请勿外传。\n\n"
             "林华\n广州华南电子有限公司\n")
A6 = message(addr("林华", "lin.hua@huanan-elec.example"), addr("孙丽", "sun.li@corp.example"),
             "下季度采购计划", text_part(SPEC_BODY, "gbk", "base64"), charset="gbk",
             msgid="hn-plan-q3@huanan-elec.example", date="Fri, 07 Jun 2024 15:20:00 +0800")
archived("a6-huanan-plan", A6)

# ---- forward-external ----------------------------------------------------------------

fwd = ("Bob,\n\nFYI - see the request below, you may want to undercut them.\n\n"
       "-----Original Message-----\nFrom: Mary Buyer <buyer@acme.example>\n"
       "Sent: Monday, June 10, 2024 8:15 AM\nTo: Wang Wei <wang.wei@corp.example>\n"
       "Subject: Quote request CX-200\n\n" + QUOTE_BODY)
scenario("fwd-outlook-en-qp", "Outlook forward of a customer's quote request to a competitor "
         "(English, quoted-printable)",
         message(addr("Wang Wei", "wang.wei@corp.example"), "bob@rival-trading.example",
                 "FW: Quote request CX-200", text_part(fwd, "utf-8", "quoted-printable")),
         "wang.wei@corp.example", ["bob@rival-trading.example"], ["forward-external"],
         auth="wang.wei")

fwd = ("张总：\n\n转给您参考。\n\n------------------ 原始邮件 ------------------\n"
       "发件人: \"王芳\"<purchasing@xingchen.example>;\n发送时间: 2024年6月12日(星期三) 上午9:30\n"
       "收件人: \"李娜\"<li.na@corp.example>;\n主题: 采购订单 PO-2024-0612\n\n" + PO_BODY)
scenario("fwd-qq-gbk-b64", "QQ Mail / Foxmail forward (原始邮件, 发件人:) of a customer order "
         "to an outside company (GBK, base64)",
         message(addr("李娜", "li.na@corp.example", "gbk"), "zhang@newco-trade.example",
                 "转发：采购订单 PO-2024-0612", text_part(fwd, "gbk", "base64"), charset="gbk"),
         "li.na@corp.example", ["zhang@newco-trade.example"], ["forward-external"])

fwd = ("供参考\n\n---------- Forwarded message ---------\n发件人： 周敏 <zhou.min@hongyuan.example>"
       "\nDate: 2024年6月11日周二 下午4:00\nSubject: 第5批发货通知\nTo: 李娜 "
       "<li.na@corp.example>\nCc: <partner@logistics-partner.example>\n\n" + SHIP_BODY)
scenario("fwd-gmail-zh-utf8-html", "Gmail forward in Chinese, HTML only (全角冒号), to an "
         "outside company",
         message(addr("李娜", "li.na@corp.example"), "agent@otherco.example",
                 "Fwd: 第5批发货通知",
                 text_part("<html><body>" + html.escape(fwd).replace("\n", "<br>\n") +
                           "</body></html>",
                           "utf-8", "base64", "html")),
         "li.na@corp.example", ["agent@otherco.example"], ["forward-external"])

scenario("fwd-attached-rfc822", "a customer's order attached as a message (message/rfc822) "
         "sent to an outside agent",
         message(addr("李娜", "li.na@corp.example"), "agent@otherco.example",
                 "订单", [text_part("见附件。\n", "utf-8", "base64"), rfc822_part(A1)]),
         "li.na@corp.example", ["agent@otherco.example"], ["forward-external"])

scenario("fwd-thread-references", "a reply in a customer's archived thread (In-Reply-To) "
         "sent to someone new, nothing quoted",
         message(addr("Wang Wei", "wang.wei@corp.example"), "bob@rival-trading.example",
                 "Re: Quote request CX-200",
                 text_part("Bob, they want 5000 units by Q3. Your call.\n", "utf-8", "7bit"),
                 extra=[("In-Reply-To", "<quote-req-77@acme.example>"),
                        ("References", "<quote-req-77@acme.example>")]),
         "wang.wei@corp.example", ["bob@rival-trading.example"], ["forward-external"])

reply = ("王经理：\n\n交期确认为7月15日。\n\n李娜\n\n-----原始邮件-----\n"
         "发件人: 王芳 [mailto:purchasing@xingchen.example]\n发送时间: 2024年6月12日 9:30\n"
         "收件人: 李娜 <li.na@corp.example>\n主题: 采购订单 PO-2024-0612\n\n" + PO_BODY)
fwd = ("Peter, see below.\n\n> -------- Forwarded Message --------\n> Subject: Re: CX-200 "
       "pricing\n> Date: Mon, 10 Jun 2024 17:02:11 +0200\n> From: Peter Gibbons "
       "<peter@initech.example>\n> To: John Smith <john.smith@corp.example>\n>\n"
       "> We can accept 38.90 if you match the Globex terms.\n")
scenario("fwd-thunderbird-quoted", "Thunderbird forward header (Subject/Date/From/To order) "
         "inside '>' quotes, sent to another customer",
         message(addr("John Smith", "john.smith@corp.example"), "ops@globex.example",
                 "Fwd: Re: CX-200 pricing", text_part(fwd, "utf-8", "7bit")),
         "john.smith@corp.example", ["ops@globex.example"], ["forward-external"])

fwd = ("FYI, nice offer.\n\n-----Original Message-----\nFrom: Deals <news@vendor-mailer."
       "example>\nSent: Monday, June 10, 2024 9:00 AM\nTo: john.smith@corp.example\n"
       "Subject: 20% off lab equipment\n\nThis week only: 20% off all oscilloscopes.\n")
scenario("neg-forward-vendor-mail", "a vendor's newsletter (not a customer) forwarded outside",
         message(addr("John Smith", "john.smith@corp.example"), "friend@otherlab.example",
                 "FW: 20% off lab equipment", text_part(fwd, "utf-8", "quoted-printable")),
         "john.smith@corp.example", ["friend@otherlab.example"], [])

lst = message(addr("Jane Dev", "jane@opensource.example"), "dev@lists.opensource.example",
              "[dev] release 2.0 schedule",
              text_part("The 2.0 release is planned for July; please test the RCs.\n",
                        "utf-8", "7bit"),
              extra=[("Resent-From", "dev-bounces@lists.opensource.example"),
                     ("Resent-To", "dev@lists.opensource.example"),
                     ("Resent-Date", "Mon, 10 Jun 2024 10:00:00 +0000"),
                     ("X-Forwarded-For", "dev@lists.opensource.example")])
scenario("neg-resent-by-list", "a mailing list's message (Resent-* and X-Forwarded-For by the "
         "list server) passed on to an outside friend",
         lst, "liu.yang@corp.example", ["friend@otherlab.example"], [])

fwd = ("刘总：\n\n您要的订单，见下。\n\n-------- 转发邮件信息 --------\n"
       "发件人：\"王芳\" <purchasing@xingchen.example>\n发送日期：2024-06-12 09:30:00\n"
       "收件人：\"李娜\" <li.na@corp.example>\n主题：采购订单 PO-2024-0612\n\n" + PO_BODY)
scenario("fwd-163-gb18030-qp", "163 Mail forward (转发邮件信息, 全角冒号) of a customer order to "
         "another customer (GB18030, quoted-printable)",
         message(addr("李娜", "li.na@corp.example", "gb18030"), "zhou.min@hongyuan.example",
                 "转发：采购订单 PO-2024-0612", text_part(fwd, "gb18030", "quoted-printable"),
                 charset="gb18030"),
         "li.na@corp.example", ["zhou.min@hongyuan.example"], ["forward-external"])

scenario("fwd-eml-in-zip", "a customer's order saved as .eml, zipped and sent to an outside "
         "agent",
         message(addr("李娜", "li.na@corp.example"), "agent@otherco.example", "资料",
                 [text_part("压缩包里是原邮件。\n", "utf-8", "base64"),
                  file_part("订单.zip", zip_bytes([("订单/PO-2024-0612.eml", A1)]),
                            "application/zip")]),
         "li.na@corp.example", ["agent@otherco.example"], ["forward-external"])

scenario("neg-reply-to-customer", "a normal reply to the customer, quoting the customer "
         "(Outlook in Chinese, GB2312)",
         message(addr("李娜", "li.na@corp.example", "gb2312"), "purchasing@xingchen.example",
                 "答复: 采购订单 PO-2024-0612", text_part(reply, "gb2312", "base64"),
                 charset="gb2312",
                 extra=[("In-Reply-To", "<po-2024-0612@xingchen.example>")]),
         "li.na@corp.example", ["purchasing@xingchen.example"], [])

fwd = ("孙丽，这个客户你来跟一下。\n\n-----原始邮件-----\n发件人: purchasing@xingchen.example\n"
       "发送时间: 2024年6月12日 9:30\n收件人: li.na@corp.example\n主题: 采购订单\n\n" + PO_BODY)
scenario("neg-internal-forward", "customer mail forwarded to a colleague (internal)",
         message(addr("李娜", "li.na@corp.example"), "sun.li@corp.example",
                 "转发: 采购订单", [text_part(fwd, "utf-8", "quoted-printable"),
                                     rfc822_part(A1)]),
         "li.na@corp.example", ["sun.li@corp.example"], [])

scenario("neg-reply-all-thread", "reply to all of a customer's thread: the customer and the "
         "partner it had copied",
         message(addr("李娜", "li.na@corp.example"), "zhou.min@hongyuan.example",
                 "回复：第5批发货通知",
                 text_part("周经理、各位：\n\n收到，谢谢。\n\n在 2024年6月11日 16:00，周敏 "
                           "<zhou.min@hongyuan.example> 写道：\n> 第5批货物已于今天发出。\n",
                           "utf-8", "base64"),
                 cc="partner@logistics-partner.example",
                 extra=[("In-Reply-To", "<hy-ship-5@hongyuan.example>")]),
         "li.na@corp.example", ["zhou.min@hongyuan.example", "partner@logistics-partner.example"],
         [])

# ---- auto-forward ----------------------------------------------------------------

resent = A2.replace("Message-ID:", "Resent-From: wang.wei@corp.example\r\n"
                    "Resent-To: bob@rival-trading.example\r\n"
                    "Resent-Date: Mon, 10 Jun 2024 18:00:00 +0800\r\nMessage-ID:", 1)
scenario("auto-resent", "a customer's mail re-sent unchanged (Resent-* headers, the same "
         "Message-ID as the archived original)",
         resent, "wang.wei@corp.example", ["bob@rival-trading.example"], ["auto-forward"])

scenario("auto-exchange-rule", "an Exchange inbox rule forwarding a colleague's mail outside "
         "(X-MS-Exchange-Inbox-Rules-Loop)",
         message(addr("孙丽", "sun.li@corp.example"), "sunli.archive@oldjob.example",
                 "FW: 周报", text_part("本周工作见下。\n", "utf-8", "base64"),
                 extra=[("X-MS-Exchange-Inbox-Rules-Loop", "sun.li@corp.example"),
                        ("Auto-Submitted", "auto-forwarded")]),
         "sun.li@corp.example", ["sunli.archive@oldjob.example"], ["auto-forward"])

scenario("auto-redirect-msgid", "a customer's contract redirected unchanged to an outsider "
         "(same Message-ID as archived inbound mail)",
         A4, "john.smith@corp.example", ["jsmith@globex-rival.example"], ["auto-forward"])

scenario("auto-body-hash", "a customer's mail sent on as a new message: other headers, "
         "re-encoded (UTF-8 quoted-printable, re-wrapped), the same text",
         message(addr("孙丽", "sun.li@corp.example"), "old.friend@newjob.example",
                 "下季度采购计划", text_part(SPEC_BODY.replace("；", "；\n"), "utf-8",
                                              "quoted-printable")),
         "sun.li@corp.example", ["old.friend@newjob.example"], ["auto-forward"])

scenario("neg-auto-reply", "an out-of-office auto-reply to a customer (Auto-Submitted: "
         "auto-replied)",
         message(addr("李娜", "li.na@corp.example"), "purchasing@xingchen.example",
                 "自动回复: 采购订单 PO-2024-0612",
                 text_part("我6月20日前休假，急事请联系孙丽 sun.li@corp.example。\n", "utf-8",
                           "base64"),
                 extra=[("Auto-Submitted", "auto-replied"),
                        ("In-Reply-To", "<po-2024-0612@xingchen.example>")]),
         "li.na@corp.example", ["purchasing@xingchen.example"], [])

scenario("neg-resend-own", "our own quote sent again to the customer (Message-ID of archived "
         "outbound mail)",
         A5, "li.na@corp.example", ["purchasing@xingchen.example"], [])

# ---- customer-data -----------------------------------------------------------------

scenario("data-xlsx-to-163", "the customer list as xlsx to a 163.com address (the leak the "
         "gateway exists for)",
         message(addr("李娜", "li.na@corp.example"), "z12345@163.com", "客户名单",
                 [text_part("备份一下。\n", "utf-8", "base64"),
                  file_part("客户名单.xlsx", xlsx_bytes(CUSTOMER_ROWS),
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]),
         "li.na@corp.example", ["z12345@163.com"], ["customer-data", "personal-webmail"])

csv = "\r\n".join(",".join(r) for r in CUSTOMER_ROWS).encode("gbk")
scenario("data-zip-csv-gbk", "the customer list as a GBK CSV inside a zip, to a headhunter",
         message(addr("孙丽", "sun.li@corp.example"), "hr@headhunter.example", "资料",
                 [text_part("您要的资料。\n", "gb2312", "base64"),
                  file_part("资料.zip", zip_bytes([("客户/客户.csv", csv)]), "application/zip")]),
         "sun.li@corp.example", ["hr@headhunter.example"], ["customer-data"])

lst = ("Here are the accounts I handle, with the people to call:\n\n"
       "Globex Corporation - Hank, hank@globex.example, +1 212 555 0142\n"
       "Acme Trading, Ltd. - Mary, buyer@acme.example, +1 (415) 555-0100\n"
       "Initech GmbH - Peter, peter@initech.example, +49 30 1234 5678\n")
scenario("data-body-en-qp", "a rep's account list in the body (English, quoted-printable) to "
         "a recruiter",
         message(addr("John Smith", "john.smith@corp.example"), "recruiter@talent-hunt.example",
                 "My accounts", text_part(lst, "utf-8", "quoted-printable")),
         "john.smith@corp.example", ["recruiter@talent-hunt.example"], ["customer-data"])

vcf = "".join("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:%s\r\nORG:%s\r\nEMAIL:%s\r\nTEL:%s\r\n"
              "END:VCARD\r\n" % (r[1], r[0], r[2], r[3]) for r in CUSTOMER_ROWS[1:])
inner = message(addr("刘洋", "liu.yang@corp.example"), "li.na@corp.example", "通讯录导出",
                [text_part("导出的通讯录在附件。\n", "utf-8", "base64"),
                 file_part("contacts.zip", zip_bytes([("contacts.vcf", vcf)]),
                           "application/zip")])
scenario("data-vcf-zip-in-rfc822", "contacts as vCard in a zip in an attached message "
         "(a colleague's) sent outside",
         message(addr("李娜", "li.na@corp.example"), "friend@partner-co.example", "通讯录",
                 [text_part("给你。\n", "utf-8", "base64"), rfc822_part(inner)]),
         "li.na@corp.example", ["friend@partner-co.example"], ["customer-data"])

own = ("王经理：\n\n这是我们登记的贵司联系人，请核对：\n北京星辰科技有限公司\n"
       "王芳 wang.fang@xingchen.example +86 139 1111 2222\n"
       "采购部 purchasing@xingchen.example 010-8888-0001\n总机 +86 10 8888 0000\n")
scenario("neg-own-list-to-customer", "a customer's own contact list sent back to that customer",
         message(addr("李娜", "li.na@corp.example"), "purchasing@xingchen.example",
                 "贵司联系人核对", text_part(own, "utf-8", "quoted-printable")),
         "li.na@corp.example", ["purchasing@xingchen.example"], [])

staff = ("Dear events team,\n\nattendees for the dinner:\n"
         "Li Na, li.na@corp.example, +86 138 0013 8000\n"
         "Wang Wei, wang.wei@corp.example, +86 139 0013 9000\n"
         "Zhao Gang, zhao.gang@corp.example, +86 10 6552 1234\n"
         "Sun Li, sun.li@corp.example, +86 137 0013 7000\n")
scenario("neg-staff-list", "a short list of internal staff to a caterer",
         message(addr("John Smith", "john.smith@corp.example"), "events@catering.example",
                 "Dinner attendees", text_part(staff, "utf-8", "7bit")),
         "john.smith@corp.example", ["events@catering.example"], [])

scenario("neg-one-reference", "a prospect told about one reference customer",
         message(addr("John Smith", "john.smith@corp.example"), "cto@prospect.example",
                 "References", text_part("Globex Corporation has run our controllers since "
                                         "2019.\n", "utf-8", "7bit")),
         "john.smith@corp.example", ["cto@prospect.example"], [])

# ---- personal-webmail -----------------------------------------------------------------

fwd = ("\n\nBegin forwarded message:\n\nFrom: Mary Buyer <buyer@acme.example>\n"
       "Subject: Quote request CX-200\nDate: 10 June 2024 at 08:15:00 PDT\n"
       "To: Wang Wei <wang.wei@corp.example>\n\n" + QUOTE_BODY)
scenario("webmail-thread-gmail", "Apple Mail forward of a customer's mail to a gmail address",
         message(addr("Wang Wei", "wang.wei@corp.example"), "cx.trader88@gmail.com",
                 "Fwd: Quote request CX-200", text_part(fwd, "utf-8", "quoted-printable")),
         "wang.wei@corp.example", ["cx.trader88@gmail.com"],
         ["forward-external", "personal-webmail"])

note = ("拜访北京星辰科技有限公司，找王芳 +86 139 1111 2222 谈续约。\n")
scenario("webmail-note-with-data", "a sales note with a customer's contact to a 126.com "
         "address (GB2312)",
         message(addr("孙丽", "sun.li@corp.example", "gb2312"), "xiaoli2024@126.com", "明天",
                 text_part(note, "gb2312", "quoted-printable"), charset="gb2312"),
         "sun.li@corp.example", ["xiaoli2024@126.com"], ["personal-webmail"])

scenario("neg-note-own-webmail", "a rep's private note to her own webmail, no customer data",
         message(addr("李娜", "li.na@corp.example"), "lina1990@qq.com", "备忘",
                 text_part("周六上午10点带孩子去游泳，记得买牛奶。\n", "gb2312", "base64"),
                 charset="gb2312"),
         "li.na@corp.example", ["lina1990@qq.com"], [])

scenario("neg-footer-references", "a rep's lunch invitation to a friend at qq.com, the "
         "company footer naming reference customers",
         message(addr("John Smith", "john.smith@corp.example"), "old.roommate@qq.com", "Lunch?",
                 text_part("Lunch on Friday?\n\n--\nJohn Smith, Corp Example\nTrusted by "
                           "Globex Corporation, Acme Trading, Ltd. and Initech GmbH\n",
                           "utf-8", "7bit")),
         "john.smith@corp.example", ["old.roommate@qq.com"], [])

reply = ("张先生您好：\n\n货已发出，单号 SF1234567890。\n\n李娜\n\n"
         "在 2024年6月10日 10:00，张先生 <zhang.xiansheng@163.com> 写道：\n> 请问我的货什么时候发？\n")
scenario("neg-customer-on-webmail", "a reply to a customer who uses 163.com, quoting him",
         message(addr("李娜", "li.na@corp.example"), "zhang.xiansheng@163.com", "回复：发货",
                 text_part(reply, "utf-8", "base64")),
         "li.na@corp.example", ["zhang.xiansheng@163.com"], [])

# ---- bcc-external ------------------------------------------------------------------

reply = ("王经理：\n\n交期确认为7月15日。\n\n李娜\n\n-----原始邮件-----\n"
         "发件人: 王芳 <purchasing@xingchen.example>\n发送时间: 2024年6月12日 9:30\n"
         "收件人: 李娜 <li.na@corp.example>\n主题: 采购订单 PO-2024-0612\n\n" + PO_BODY)
scenario("bcc-thread-broker", "a reply to the customer with an outside broker only in the "
         "envelope (BCC)",
         message(addr("李娜", "li.na@corp.example"), "purchasing@xingchen.example",
                 "答复: 采购订单 PO-2024-0612", text_part(reply, "gbk", "quoted-printable"),
                 charset="gbk", extra=[("In-Reply-To", "<po-2024-0612@xingchen.example>")]),
         "li.na@corp.example", ["purchasing@xingchen.example", "broker@agency-deals.example"],
         ["bcc-external", "forward-external"])

body = ("Hank,\n\nas discussed, our other North American accounts for the audit:\n"
        "Acme Trading, Ltd. (buyer@acme.example)\nInitech GmbH\n")
scenario("bcc-data-consultant", "mail to a customer carrying other customers' data, BCC to an "
         "outside consultant",
         message(addr("John Smith", "john.smith@corp.example"), "hank@globex.example",
                 "Accounts", text_part(body, "utf-8", "quoted-printable")),
         "john.smith@corp.example", ["hank@globex.example", "jsmith@smith-consulting.example"],
         ["bcc-external"])

scenario("neg-bcc-manager", "a reply to the customer, BCC to the manager (internal)",
         message(addr("李娜", "li.na@corp.example"), "purchasing@xingchen.example",
                 "答复: 采购订单 PO-2024-0612", text_part(reply, "utf-8", "base64"),
                 extra=[("In-Reply-To", "<po-2024-0612@xingchen.example>")]),
         "li.na@corp.example", ["purchasing@xingchen.example", "zhao.gang@corp.example"], [])

scenario("neg-bcc-newsletter", "a product newsletter to customers, all in BCC, no customer data",
         message(addr("Sales", "sales@corp.example"), "undisclosed-recipients:;",
                 "CX-300 is here", text_part("Our new CX-300 controller ships in July.\n",
                                             "utf-8", "7bit")),
         "john.smith@corp.example", ["buyer@acme.example", "ops@globex.example",
                                     "peter@initech.example"], [])
