#!/usr/bin/env python3
"""mkdetmail.py OUTDIR [N] - N messages of about 200 KB with attachments, for bench/detect.sh

Sales mail as the detectors meet it: a Chinese and English body (GBK or
UTF-8, base64 or quoted-printable) with a quoted reply, and attachments: an
xlsx of contacts, a zip holding a CSV, a vCard file, a forwarded message
(message/rfc822), and a binary (PDF-like) part; card numbers, an IBAN, a
cloud link with an access code, and customer addresses of the fixture
directory (tests/detect/directory) here and there. Deterministic (a fixed
seed). The MIME helpers are those of tests/detect/make-scenarios.py (run
into a scratch directory under OUTDIR, which is then removed).
"""
import importlib.util
import os
import random
import shutil
import sys

OUT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
scratch = os.path.join(OUT, ".scn")
spec = importlib.util.spec_from_file_location(
    "make_scenarios", os.path.join(TOP, "tests", "detect", "make-scenarios.py"))
g = importlib.util.module_from_spec(spec)
argv, sys.argv = sys.argv, [sys.argv[0], scratch]
spec.loader.exec_module(g)
sys.argv = argv
shutil.rmtree(scratch, ignore_errors=True)

rnd = random.Random(20240614)
HAN = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
CUSTOMERS = ["wang.fang@xingchen.example", "purchasing@xingchen.example", "zhou.min@hongyuan.example",
             "lin.hua@huanan-elec.example", "chen.yu@tianfu-log.example", "hank@globex.example",
             "buyer@acme.example", "peter@initech.example"]
PHONES = ["+86 139 1111 2222", "010-8888-0001", "136 2222 3333", "+86 137 3333 4444",
          "158-4444-5555", "+1 212 555 0142"]
WORDS = ("order delivery price quote invoice shipment contract volume payment schedule "
         "warehouse forecast discount quality sample approval").split()


def han(n):
    return "".join(rnd.choice(HAN) for _ in range(n))


def paragraph():
    if rnd.random() < 0.5:
        return han(rnd.randint(40, 120)) + "。"
    return " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(12, 30))).capitalize() + "."


def body(i):
    lines = ["王经理：", ""]
    for k in range(rnd.randint(25, 45)):
        lines.append(paragraph())
        if k % 9 == 3:
            lines.append("联系人 %s 电话 %s" % (rnd.choice(CUSTOMERS), rnd.choice(PHONES)))
    if i % 5 == 0:
        lines += ["", "户名：李娜", "开户行：招商银行深圳分行", "账号：6222 0212 3456 1236"]
    if i % 7 == 0:
        lines += ["", "链接: https://pan.baidu.com/s/1AbCdEf%d 提取码: x7k9" % i]
    if i % 11 == 0:
        lines += ["", "Beneficiary: Corp Example GmbH", "IBAN: DE89 3704 0044 0532 0130 00"]
    lines += ["", "李娜", "", "-----原始邮件-----", "发件人: 王芳 <purchasing@xingchen.example>",
              "发送时间: 2024年6月12日 9:30", "主题: 采购订单", ""]
    lines += ["> " + paragraph() for _ in range(10)]
    return "\n".join(lines) + "\n"


def rows(n):
    out = [["客户", "联系人", "邮箱", "电话", "备注"]]
    for _ in range(n):
        out.append([han(8) + "有限公司", han(3), rnd.choice(CUSTOMERS), rnd.choice(PHONES),
                    han(30)])
    return out


os.makedirs(OUT, exist_ok=True)
for i in range(N):
    cs = "gbk" if i % 2 else "utf-8"
    cte = "base64" if i % 3 else "quoted-printable"
    csv = "\n".join(",".join(r) for r in rows(150)).encode("gbk")
    vcf = "".join("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:%s\r\nEMAIL:%s\r\nTEL:%s\r\nEND:VCARD\r\n"
                  % (han(3), rnd.choice(CUSTOMERS), rnd.choice(PHONES)) for _ in range(40))
    inner = g.message(g.addr("王芳", "purchasing@xingchen.example"),
                      g.addr("李娜", "li.na@corp.example"), "采购订单 %d" % i,
                      g.text_part(body(i + 1), "utf-8", "base64"),
                      msgid="inner-%d@xingchen.example" % i, date="Wed, 12 Jun 2024 09:30:00 +0800")
    parts = [g.text_part(body(i), cs, cte),
             g.file_part("客户名单-%d.xlsx" % i, g.xlsx_bytes(rows(120)),
                         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
             g.file_part("资料-%d.zip" % i, g.zip_bytes([("客户/客户.csv", csv)]),
                         "application/zip"),
             g.file_part("contacts.vcf", vcf.encode(), "text/vcard"),
             g.rfc822_part(inner),
             g.file_part("报价单-%d.pdf" % i, b"%PDF-1.4\n" + rnd.randbytes(95000),
                         "application/pdf")]
    raw = g.message(g.addr("李娜", "li.na@corp.example", cs), "purchasing@xingchen.example",
                    "报价与资料 %d" % i, parts, msgid="bench-%05d@corp.example" % i,
                    charset=cs, date="Fri, 14 Jun 2024 10:00:00 +0800")
    with open(os.path.join(OUT, "m%05d.eml" % i), "wb") as f:
        f.write(raw.encode())
