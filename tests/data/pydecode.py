#!/usr/bin/env python3
"""pydecode.py DIR - print "path<TAB>subject" for every message under DIR.

The reference that tests/test-msg.c compares custos' subject decoding with:
Python's email package (email.header.decode_header + make_header on the
raw Subject). path is relative to DIR; a file whose first line starts with
"From " is an mbox, split at every line starting with "From ", and its
messages are printed as "path#N" (N from 0). Subjects are printed with
tabs/newlines as spaces. Where Python fails (an unknown or wrong charset,
say), the subject column is "!ERR <reason>"; where Python's reading has
C1 controls (ISO-8859-1 0x80-0x9F) it is "!C1 <the Windows-1252 reading>",
which is how custos reads ISO-8859-1. Raw 8-bit bytes in a header
are read as UTF-8, else GB18030, else Latin-1, as custos does (Python
keeps them as surrogates). Skips DIR/.cache and DIR/.done. Stdlib only.
"""
import email
import os
import re
import sys
from email.header import decode_header, make_header
from email import policy


def split_mbox(raw):
    if not raw.startswith(b"From "):
        return [raw]
    msgs, cur = [], []
    for line in raw.splitlines(keepends=True):
        if line.startswith(b"From ") and cur:
            msgs.append(b"".join(cur))
            cur = []
        cur.append(line)
    msgs.append(b"".join(cur))
    return msgs


def undo_surrogates(s):
    if not any(0xDC80 <= ord(c) <= 0xDCFF for c in s):
        return s
    b = s.encode("utf-8", "surrogateescape")
    for cs in ("utf-8", "gb18030"):
        try:
            return b.decode(cs)
        except UnicodeDecodeError:
            pass
    return b.decode("latin-1")


def subject_of(raw):
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    # the raw value (8-bit bytes as surrogates), not compat32's sanitized one
    subj = next((v for k, v in msg.raw_items() if k.lower() == "subject"), None)
    if subj is None:
        return ""
    try:
        if not isinstance(subj, str):
            subj = str(subj)
        # decode_header on 8-bit text: read it first, as custos does
        text = str(make_header(decode_header(undo_surrogates(subj))))
    except Exception as e:                      # Python could not decode it
        return "!ERR %s" % type(e).__name__
    text = re.sub(r"[\t\r\n]+", " ", undo_surrogates(text))
    if re.search("[\x80-\x9f]", text):
        # custos reads ISO-8859-1 as Windows-1252 (as browsers do): say so
        # and give that reading
        remap = "".join(c.encode("latin-1").decode("cp1252", "replace") if "\x80" <= c <= "\x9f"
                        else c for c in text)
        return "!C1 " + remap
    return text


def main():
    top = sys.argv[1]
    out = []
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != ".cache")
        for f in sorted(files):
            if f == ".done":
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, top)
            with open(path, "rb") as fh:
                raw = fh.read()
            msgs = split_mbox(raw)
            for i, m in enumerate(msgs):
                name = rel if len(msgs) == 1 else "%s#%d" % (rel, i)
                out.append("%s\t%s" % (name, subject_of(m)))
    sys.stdout.buffer.write(("\n".join(out) + "\n").encode("utf-8", "surrogatepass"))


if __name__ == "__main__":
    main()
