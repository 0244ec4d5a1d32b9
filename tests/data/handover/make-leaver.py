#!/usr/bin/env python3
"""make-leaver.py SALES.MBOX VMAIL - the leaver's and the successor's Maildirs

Built from the sales mailbox of make-sales.py (the sample directory's staff),
for custos-handover's tests. Deterministic: the same files, names, flags and
mtimes every run. Under VMAIL/corp.example/:

wang.wei/Maildir (the leaver; owner LEAVER_UID, 5001 by default)
  INBOX        mail to wang.wei, flags varied; one message twice (a
               duplicate); two in new/; odd file names: no ":2," info,
               flags out of order, a space, a byte that is not UTF-8; a
               hidden file and a directory in cur/ (not messages);
               keywords a/b with a dovecot-keywords file
  Sent         wang.wei's own mail (S), but not "Invoice 2026-118" nor the
               "备份" mail to webmail (deleted: the archive has them)
  客户/明远      the 明远贸易 thread (&W6JiNw-.&Zg6P3A-), replied (RS)
  A&B, Partners  one message: a name with '&' and ','
  v1.0         listescape on disk (v1\\2e0): a dot inside one level
  Trash        empty
  plus two messages only the mailbox has, from customers, with signatures
  (phones, a fax line, quoted text with a number in it)
li.na/Maildir (the successor; owner SUCC_UID, 5000), mode 0700, with a
  subscriptions file (version 1 unless SUBS_V2=1) and one message.

Prints "name<TAB>count" of the messages written per leaver folder.
"""
import mailbox
import os
import sys
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from datetime import datetime, timezone

mbox, vmail = sys.argv[1], sys.argv[2]
LUID = int(os.environ.get("LEAVER_UID", "5001"))
SUID = int(os.environ.get("SUCC_UID", "5000"))
SUBS_V2 = os.environ.get("SUBS_V2", "0") == "1"

leaver = os.path.join(vmail, "corp.example", "wang.wei", "Maildir")
succ = os.path.join(vmail, "corp.example", "li.na", "Maildir")


def mkmaildir(path, mode=0o700):
    for sub in ("", "cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
        os.chmod(os.path.join(path, sub), mode)


counts = {}
n = 0


def put(folder, raw, when, flags="S", new=False, name=None):
    global n
    n += 1
    d = leaver if folder == "" else os.path.join(leaver, "." + folder)
    mkmaildir(d)
    if folder and not os.path.exists(os.path.join(d, "maildirfolder")):
        open(os.path.join(d, "maildirfolder"), "w").close()
    if name is None:
        name = "%d.M%dP100Q%d.mail.corp.example,S=%d" % (when, n, n, len(raw))
        if not new:
            name += ":2," + flags
    path = os.path.join(d.encode(), b"new" if new else b"cur",
                        name if isinstance(name, bytes) else name.encode())
    with open(path, "wb") as f:
        f.write(raw)
    os.utime(path, (when, when))
    counts[folder] = counts.get(folder, 0) + 1


def ts(m):
    return int(parsedate_to_datetime(m["Date"]).timestamp())


box = mailbox.mbox(mbox)
msgs = [box.get_message(k) for k in box.keys()]

mkmaildir(leaver)
inbox_n = 0
for m in msgs:
    raw = m.as_bytes(unixfrom=False)
    frm, to = str(m["From"]), str(m["To"])
    subj = str(m["Subject"] or "")
    when = ts(m)
    if "wang.wei@corp.example" in frm:
        if "2026-118" in subj or "wangwei@163.com" in to:
            continue                    # deleted before leaving
        put("Sent", raw, when, "S")
    elif "wang.wei@corp.example" in to:
        if "2026-118" in subj:
            continue
        if "mingyuan" in frm:
            put("&W6JiNw-.&Zg6P3A-", raw, when, "RS")
            continue
        inbox_n += 1
        if inbox_n == 1:
            put("", raw, when, "FS")
            put("", raw, when + 60, "S")         # the same bytes again
        elif inbox_n == 2:
            put("", raw, when, new=True)
        elif inbox_n == 3:
            put("", raw, when, "Sa")             # keyword 0
        else:
            put("", raw, when, "RS")

# Mail only the mailbox has: customers' replies with signatures.
extra = [
    ("", "Buyer <buyer@acme.example>", "Re: Shipping dates",
     "Please confirm the shipping dates for order 4711.\n\nBest regards,\n-- \n"
     "John Buyer, Acme Trading, Ltd.\nTel: +1 (415) 555-0100\nFax: +1 415 555 0199\n"
     "Mobile: +1 415 555 0123\n\n> On Mon, you wrote:\n> call me on +1 999 999 9999\n",
     datetime(2026, 3, 25, 10, 0, tzinfo=timezone.utc), "S", False),
    ("", "明远贸易 <info@mingyuan.example>", "续约报价",
     "王先生，请尽快发来续约报价。\n\n此致\n张明\n明远贸易\n电话：0755-2222-3333\n"
     "传真：0755-2222-3334\n",
     datetime(2026, 3, 26, 9, 30, tzinfo=timezone.utc), "", True),
    ("A&-B, Partners", "Partner Desk <desk@ab-partners.example>", "Partnership terms",
     "Terms attached.\n", datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc), "S", False),
    ("v1\\2e0", "Release Bot <bot@vendor.example>", "v1.0 notes",
     "Notes.\n", datetime(2026, 3, 11, 8, 0, tzinfo=timezone.utc), "S", False),
]
for i, (folder, frm, subj, body, when, flags, new) in enumerate(extra):
    m = EmailMessage(policy=policy.SMTP)
    m["From"] = frm
    m["To"] = "王伟 <wang.wei@corp.example>"
    m["Subject"] = subj
    m["Date"] = format_datetime(when)
    m["Message-ID"] = "<leaver-extra-%d@demo.custos>" % i
    m.set_content(body)
    put(folder, m.as_bytes(), int(when.timestamp()), flags, new)

# Odd file names in INBOX (all real messages).
odd = EmailMessage(policy=policy.SMTP)
odd["From"] = "Ops Team <ops@huaxin-tech.example>"
odd["To"] = "wang.wei@corp.example"
odd["Subject"] = "Odd names"
odd["Date"] = "Tue, 03 Mar 2026 09:00:00 +0800"
odd["Message-ID"] = "<odd-%d@demo.custos>"
base = int(datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc).timestamp())
for i, name in enumerate([
        b"1772500000.M1P1Q1.mail.corp.example",              # no info at all
        b"1772500001.M2P2Q2.mail.corp.example:2,SR",         # flags out of order
        b"1772500002.M3P3Q3.mail corp example:2,S",          # a space
        b"1772500003.M4P4Q4.mail.\xffcorp:2,F"]):             # not UTF-8
    odd.replace_header("Message-ID", "<odd-%d@demo.custos>" % i)
    put("", odd.as_bytes(), base + i, name=name)
with open(os.path.join(leaver, "cur", ".nfs000001"), "wb") as f:
    f.write(b"not a message")
os.makedirs(os.path.join(leaver, "cur", "subdir"), exist_ok=True)
with open(os.path.join(leaver, "dovecot-keywords"), "w") as f:
    f.write("0 $Forwarded\n1 NonJunk\n")
mkmaildir(os.path.join(leaver, ".Trash"))
counts.setdefault("Trash", 0)

for root, dirs, files in os.walk(os.path.join(vmail, "corp.example", "wang.wei")):
    for x in dirs + files:
        os.lchown(os.path.join(root, x), LUID, LUID)
os.chown(os.path.join(vmail, "corp.example", "wang.wei"), LUID, LUID)

# The successor.
mkmaildir(succ)
with open(os.path.join(succ, "subscriptions"), "w") as f:
    f.write("V\t2\n\nArchive\n" if SUBS_V2 else "Archive\n")
os.makedirs(os.path.join(succ, ".Archive", "cur"), exist_ok=True)
hello = EmailMessage(policy=policy.SMTP)
hello["From"] = "zhao.gang@corp.example"
hello["To"] = "li.na@corp.example"
hello["Subject"] = "Welcome"
hello["Date"] = "Mon, 02 Mar 2026 09:00:00 +0800"
hello["Message-ID"] = "<welcome@demo.custos>"
hello.set_content("Hello.\n")
p = os.path.join(succ, "cur", "1772413200.M1P1Q1.mail.corp.example,S=%d:2,S"
                 % len(hello.as_bytes()))
with open(p, "wb") as f:
    f.write(hello.as_bytes())
for root, dirs, files in os.walk(os.path.join(vmail, "corp.example", "li.na")):
    for x in dirs + files:
        os.lchown(os.path.join(root, x), SUID, SUID)
os.chown(os.path.join(vmail, "corp.example", "li.na"), SUID, SUID)

for k in sorted(counts):
    print("%s\t%d" % (k, counts[k]))
