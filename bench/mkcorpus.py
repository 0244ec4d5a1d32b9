#!/usr/bin/env python3
"""mkcorpus.py - a Maildir of N messages for the benchmarks, from real mail

usage: python3 bench/mkcorpus.py OUTDIR SOURCE...

Every file under each SOURCE (recursively, dot files skipped) that looks like
mail is read: an mbox (first line "From ") is split into its messages, any
other file whose first line is a header line is one message. The whole set is
then written again and again until there are N messages (env BENCH_N, default
20000). Every copy gets its own Message-ID, <ORIG.rR@bench> (R = the round;
ORIG = the original id without <> and with its '@' made '.', or "iK" for a message that has none or
shares its id with another one), so the three tools under test see N distinct
messages and nobody can fold duplicates. All other bytes stay as they were.

Output: OUTDIR/cur/ (files NNNNNNN.bench:2,S), OUTDIR/new/, OUTDIR/tmp/, and
OUTDIR.n beside it holding N and the sources (run.sh checks it to skip a
rebuild; it is outside the Maildir so no tool under test reads it).
Python 3 standard library only; no network.
"""
import os
import re
import shutil
import sys

HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
MSGID = re.compile(rb"message-id[ \t]*:", re.I)
MAILISH = re.compile(rb"(?:^|\n)(?:from|to|subject)[ \t]*:", re.I)


def files_under(path):
    if os.path.isfile(path):
        yield path
        return
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            if not n.startswith("."):
                yield os.path.join(root, n)


def split_mbox(data):
    """Messages of an mbox: split on "From " lines at the start or after an
    empty line; the From_ line itself is dropped."""
    out = []
    starts = [0] + [m.start() + 2 for m in re.finditer(rb"\n\n(?=From )", data)]
    starts += [m.start() + 4 for m in re.finditer(rb"\r\n\r\n(?=From )", data)]
    starts = sorted(set(starts)) + [len(data)]
    for a, b in zip(starts, starts[1:]):
        chunk = data[a:b]
        nl = chunk.find(b"\n")
        if nl < 0:
            continue
        msg = chunk[nl + 1:]
        if msg.strip():
            out.append(msg)
    return out


def read_messages(sources):
    msgs = []
    nfiles = nmbox = 0
    for src in sources:
        if not os.path.exists(src):
            print(f"mkcorpus: {src}: not found, skipped", file=sys.stderr)
            continue
        for p in files_under(src):
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError as e:
                print(f"mkcorpus: {p}: {e}, skipped", file=sys.stderr)
                continue
            if data.startswith(b"From "):
                part = split_mbox(data)
                msgs.extend(part)
                nmbox += 1
            elif HEADER_LINE.match(data):
                msgs.append(data)
                nfiles += 1
    return msgs, nfiles, nmbox


def header_block(msg):
    """(end of the header block, line ending)."""
    crlf = msg.find(b"\r\n")
    lf = msg.find(b"\n")
    eol = b"\r\n" if crlf >= 0 and crlf <= lf else b"\n"
    end = msg.find(eol + eol)
    return (len(msg) if end < 0 else end + len(eol)), eol


def find_msgid(msg, hend, eol):
    """(start, end, value) of the Message-ID field (with its folded lines),
    or None."""
    pos = 0
    while pos < hend:
        nxt = msg.find(eol, pos, hend)
        nxt = hend if nxt < 0 else nxt + len(eol)
        if MSGID.match(msg, pos):
            end = nxt
            while end < hend and msg[end:end + 1] in (b" ", b"\t"):
                e2 = msg.find(eol, end, hend)
                end = hend if e2 < 0 else e2 + len(eol)
            field = msg[pos:end]
            value = field.split(b":", 1)[1].strip()
            return pos, end, value
        pos = nxt
    return None


def clean_id(value):
    v = value.strip()
    m = re.search(rb"<([^<>\s]+)>", v)
    v = m.group(1) if m else v.strip(b"<> \t\r\n")
    # One '@' in the new id: the original's becomes '.'.
    return re.sub(rb"[^!-~]|[<>]", b"", v).replace(b"@", b".")[:200]


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 64
    out = sys.argv[1]
    n = int(os.environ.get("BENCH_N", "20000"))
    if n <= 0:
        print("mkcorpus: BENCH_N must be > 0", file=sys.stderr)
        return 64
    msgs, nfiles, nmbox = read_messages(sys.argv[2:])
    if not msgs:
        print("mkcorpus: no messages found in " + " ".join(sys.argv[2:]) +
              " (run `make corpus` first)", file=sys.stderr)
        return 66
    print(f"mkcorpus: {len(msgs)} distinct messages from {nfiles} files and "
          f"{nmbox} mboxes", file=sys.stderr)

    # Prepare each message once: where its Message-ID is, what it is.
    # Fragments with none of From:, To:, Subject: (MIME test cases) are left
    # out: notmuch does not take them for mail, and they are not mail.
    prepared = []
    seen = {}
    frags = 0
    for k, m in enumerate(msgs):
        hend, eol = header_block(m)
        if not MAILISH.search(m[:hend]):
            frags += 1
            continue
        found = find_msgid(m, hend, eol)
        orig = clean_id(found[2]) if found else b""
        seen[orig] = seen.get(orig, 0) + 1
        prepared.append((m, eol, found, orig))

    if frags:
        print(f"mkcorpus: {frags} fragments without From:, To: or Subject: left out",
              file=sys.stderr)
    if not prepared:
        print("mkcorpus: no usable messages", file=sys.stderr)
        return 66
    if os.path.exists(out):
        shutil.rmtree(out)
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(out, d))
    total = 0
    count = 0
    r = 0
    while count < n:
        for k, (m, eol, found, orig) in enumerate(prepared):
            if count >= n:
                break
            base = orig if orig and seen[orig] == 1 else orig + b".i%d" % k if orig \
                else b"i%d" % k
            line = b"Message-ID: <" + base + b".r%d@bench>" % r + eol
            if found:
                data = m[:found[0]] + line + m[found[1]:]
            else:
                data = line + m
            name = os.path.join(out, "cur", "%07d.bench:2,S" % count)
            with open(name, "wb") as f:
                f.write(data)
            total += len(data)
            count += 1
        r += 1
    with open(out.rstrip("/") + ".n", "w") as f:
        f.write(f"{n} {' '.join(sys.argv[2:])}\n")
    print(f"mkcorpus: {count} messages ({r} rounds), {total / 1e6:.1f} MB raw, in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
