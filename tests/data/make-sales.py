#!/usr/bin/env python3
"""make-sales.py OUT.mbox - a small sales mailbox for the demo.

Constructed (not real) correspondence of the sample directory in conf/
(li.na, wang.wei, chen.jie @corp.example) with customers, prospects,
personal webmail and a newsletter, in English and Chinese (GB2312, GBK and
UTF-8 bodies, RFC 2047 subjects). Deterministic: the same bytes every run.
"""
import sys
import mailbox
from email.message import EmailMessage
from email.header import Header
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

TZ = timezone(timedelta(hours=8))
START = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
n = 0


def msg(frm, to, subject, body, charset="utf-8", cc=None, attach=None):
    global n
    n += 1
    m = EmailMessage()
    m["From"] = frm
    m["To"] = to
    if cc:
        m["Cc"] = cc
    m["Subject"] = Header(subject, charset).encode() if not subject.isascii() else subject
    m["Date"] = format_datetime(START + timedelta(days=n // 2, hours=n % 9))
    m["Message-ID"] = "<sales-%03d@demo.custos>" % n
    m.set_content(body, charset=charset)
    if attach:
        name, data, mtype = attach
        maintype, subtype = mtype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        m.set_boundary("=_custos_demo_%03d" % n)
    return m


def thread(emp, cust, subjects, charset="utf-8"):
    out = []
    for i, (s, body_out, body_in) in enumerate(subjects):
        out.append(msg(emp, cust, s, body_out, charset))
        if body_in:
            out.append(msg(cust, emp, "Re: " + s if s.isascii() else "回复：" + s, body_in,
                           charset))
    return out


LINA = "李娜 <li.na@corp.example>"
WANG = "王伟 <wang.wei@corp.example>"
CHEN = "陈杰 <chen.jie@corp.example>"

mails = []
mails += thread(LINA, "采购部 <purchasing@xingchen.example>", [
    ("报价单 2026-Q2", "您好，附上二季度报价，请查收。", "收到，谢谢。我们下周确认数量。"),
    ("合同草案", "合同草案已发，请审阅。", "法务意见见附件说明，第5条需修改。"),
    ("发货安排", "第一批货物3月20日发出。", "好的，仓库已准备。"),
    ("发票", "发票已开具，请安排付款至公司账户。", "已安排付款。"),
], "gb2312")
mails += thread(WANG, "Buyer <buyer@acme.example>", [
    ("Price list for April", "Please find our April price list.", "Thanks, we will order 200 units."),
    ("Order 4711 confirmation", "Order 4711 is confirmed.", "Great, please send the invoice."),
    ("Invoice 2026-118", "Invoice attached; payment to our company account.", "Paid today."),
])
mails += thread(LINA, "Ops Team <ops@huaxin-tech.example>", [
    ("Samples for the pilot", "We can ship ten samples next week.", "Please do, to our Suzhou site."),
    ("Pilot feedback", "How did the pilot go?", "Very well; we want to discuss volume."),
    ("Volume pricing", "Volume pricing is in the attached sheet.", "We will come back by Friday."),
    ("Meeting next Tuesday", "Would Tuesday 10:00 suit you?", None),
])
mails += thread(WANG, "明远贸易 <info@mingyuan.example>", [
    ("新品介绍", "我司新品目录，欢迎垂询。", "对第三页的型号感兴趣。"),
    ("样品寄送", "样品已寄出，快递单号 SF1234567890。", "样品已收到，质量不错。"),
    ("年度框架协议", "年度框架协议请确认。", "协议已签字盖章。"),
], "gbk")
mails += thread(CHEN, "purchasing@xingchen.example", [
    ("交接说明", "我将离职，后续由李娜负责贵司业务。", None),
])
# A personal webmail correspondent (never a customer), both ways.
mails += thread(LINA, "小王 <xiaowang88@qq.com>", [
    ("周末聚会", "周六晚上一起吃饭？", "好啊，老地方见。"),
    ("照片", "聚会照片发你了。", "收到！"),
    ("生日快乐", "生日快乐！", "谢谢！"),
])
# A newsletter: one way only.
for i in range(4):
    mails.append(msg("Vendor News <news@vendor.example>", LINA, "Vendor newsletter #%d" % (i + 1),
                     "This month's offers."))
# Internal mail.
mails.append(msg(LINA, WANG, "客户交接", "王伟，明远贸易的资料请整理好交给我。"))
mails.append(msg("赵刚 <zhao.gang@corp.example>", LINA, "Q2 targets", "Targets attached."))
# The leak: a customer list to the leaver's own webmail.
customers_csv = ("客户,联系人,电话,邮箱\n"
                 "北京星辰科技有限公司,采购部,010-8888-0000,purchasing@xingchen.example\n"
                 "明远贸易,信息部,0755-2222-3333,info@mingyuan.example\n"
                 "Acme Trading,Buyer,+1 415 555 0100,buyer@acme.example\n").encode("utf-8")
mails.append(msg(WANG, "wangwei@163.com", "备份", "备份一下。",
                 attach=("客户名单.csv", customers_csv, "text/csv")))

box = mailbox.mbox(sys.argv[1], create=True)
box.lock()
for i, m in enumerate(mails):
    mm = mailbox.mboxMessage(m)
    mm.set_from("MAILER-DAEMON", (START + timedelta(days=i // 2)).astimezone(timezone.utc).timetuple())
    box.add(mm)
box.flush()
box.unlock()
print("%d messages in %s" % (len(mails), sys.argv[1]))
