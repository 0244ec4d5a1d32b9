#!/bin/sh
# bench/handover.sh [BUILD] [CORPUS] - custos-handover apply vs cp -a
#
# A leaver's Maildir of BENCH_HANDOVER_N (50000) real messages (the corpus,
# repeated by bench/mkcorpus.py with a Message-ID of their own each, the
# leaver added to To:), spread over INBOX, Sent and six folders (客户/明远 and
# 客户/华东, one with '&' and ','), flags varied, one message in a
# hundred twice in its folder; and its archive: every message plus 1% the
# mailbox no longer has (recovered by apply). Then, BENCH_HANDOVER_RUNS (3)
# times, in the same run: `cp -a` of the Maildir (the baseline: the bytes
# and the metadata copied, nothing else), and `custos-handover apply` of a
# fresh plan into an empty successor Maildir (every message read, hashed,
# its headers parsed, written with owner, mode and mtime, the archive
# searched, contacts, directory, hold, forwarding audit, journal). The page
# cache is warm for both; `sync` before each. Medians and their ratio;
# target: apply at most 2x cp -a. Results: var/bench/handover.res.
# Runnable as `sh bench/handover.sh` from the source tree (after make and
# make corpus). Nothing here touches the network.
set -eu
BUILD=${1:-build}
CORPUS=${2:-var/corpus}
. bench/lib.sh
n=${BENCH_HANDOVER_N:-50000}
runs=${BENCH_HANDOVER_RUNS:-3}
case $BUILD in /*) hov=$BUILD/custos-handover ;; *) hov=$top/$BUILD/custos-handover ;; esac
w=$bench/handover
src=$w/leaver

[ -x "$bin" ] || die "$bin not built (make)"
[ -x "$hov" ] || die "$hov not built (make)"
[ -d "$CORPUS" ] || die "no corpus in $CORPUS (make corpus)"
mkdir -p "$w"
cat > "$w/custos.conf" <<CONF
[archive]
dir = $w/archive
[directory]
webmail_domains = $top/conf/webmail-domains.txt
[handover]
maildir = $w/fs/vmail/%d/%n/Maildir
plans = $w/plans
alias_maps = $w/etc/aliases
virtual_maps = $w/etc/virtual
forward_file = $w/home/%n/.forward
sieve = $w/vmail/%d/%n/sieve
[log]
level = ${BENCH_HANDOVER_LOG:-warning}
CONF
CUSTOS_CONF=$w/custos.conf
export CUSTOS_CONF

want="$n $CORPUS"
if [ -f "$w/built" ] && [ -d "$src" ] && [ "$(cat "$w/built")" = "$want" ]; then
    echo "== handover: $src already holds $n messages"
else
    echo "== handover: building a leaver of $n messages from $CORPUS, and its archive"
    rm -rf "$src" "$w/vmail" "$w/archive" "$w/plans" "$w/src" "$w/deleted" "$w/built"
    BENCH_N=$((n + n / 100)) python3 bench/mkcorpus.py "$w/src" "$CORPUS" > /dev/null
    python3 - "$w/src" "$src" "$w/deleted" "$n" <<'PY'
import os, re, sys
src, leaver, deleted, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
folders = ["", "Sent", "Archive", "&W6JiNw-.&Zg6P3A-", "&W6JiNw-.&U05OHA-",
           "A&-B, Partners", "Projects.2026", "Trash"]
weights = [40, 20, 15, 8, 7, 4, 4, 2]
flags = ["S", "RS", "FS", "", "S", "Sa", "RS", "ST"]
TO = re.compile(rb"^to[ \t]*:", re.I | re.M)
names = sorted(os.listdir(os.path.join(src, "cur")))
for d in [deleted] + [leaver if not f else os.path.join(leaver, "." + f) for f in folders]:
    for s in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, s), exist_ok=True)
with open(os.path.join(leaver, "dovecot-keywords"), "w") as f:
    f.write("0 $Forwarded\n")
slots = [i for i, w in enumerate(weights) for _ in range(w)]
t0 = 1767225600                      # 2026-01-01
for k, name in enumerate(names):
    with open(os.path.join(src, "cur", name), "rb") as f:
        m = f.read()
    eol = b"\r\n" if b"\r\n" in m[:200] else b"\n"
    end = m.find(eol + eol)
    hdr, body = (m, b"") if end < 0 else (m[:end + len(eol)], m[end + len(eol):])
    t = TO.search(hdr)
    if t:      # the leaver among the recipients: the archive knows the mail as theirs
        e = hdr.find(eol, t.end())
        while e >= 0 and hdr[e + len(eol):e + len(eol) + 1] in (b" ", b"\t"):
            e = hdr.find(eol, e + len(eol))
        e = len(hdr) - len(eol) if e < 0 else e
        hdr = hdr[:e] + b", wang.wei@corp.example" + hdr[e:]
    else:
        hdr = b"To: wang.wei@corp.example" + eol + hdr
    m = hdr + body
    when = t0 + k * 311
    if k >= n:                       # the leaver deleted these; the archive has them
        p = os.path.join(deleted, "cur", "%07d.bench:2,S" % k)
    else:
        i = slots[k % len(slots)]
        d = leaver if not folders[i] else os.path.join(leaver, "." + folders[i])
        fl = flags[(k // len(slots)) % len(flags)]
        new = k % 97 == 0
        p = os.path.join(d, "new" if new else "cur",
                         "%d.M%dP1Q1.bench,S=%d%s" % (when, k, len(m), "" if new else ":2," + fl))
    with open(p, "wb") as f:
        f.write(m)
    os.utime(p, (when, when))
    if k < n and k % 100 == 7:       # the same message twice in its folder
        q = p.replace(".M%dP1Q1." % k, ".M%dP2Q2." % k)
        with open(q, "wb") as f:
            f.write(m)
        os.utime(q, (when + 1, when + 1))
PY
    cat > "$w/employees.csv" <<CSV
address,name,department,status,departed,successor,manager,personal_addresses,mobile
wang.wei@corp.example,王伟,sales,leaving,,,,wangwei@163.com,
li.na@corp.example,李娜,sales,active,,,,,
CSV
    "$bin" init > /dev/null
    # every folder (import reads one Maildir folder per path)
    "$bin" import "$src" "$src"/.[!.]* "$w/deleted" 2>&1 | tail -n 1
    "$bin" directory import employees "$w/employees.csv" > /dev/null
    rm -rf "$w/src"
    echo "$want" > "$w/built"
fi
mkdir -p "$w/etc"
: > "$w/etc/aliases"
: > "$w/etc/virtual"
msgs=$(find "$src" \( -path '*/cur/*' -o -path '*/new/*' \) -type f | wc -l)
bytes=$(du -sb "$src" | cut -f1)

# The mail store of the runs: a file system made for this run (ext4 on a
# loop device) when we may, so that no earlier deletion slows the inode
# allocator of either contender; else the directory as it is.
fs=$w/fs
cleanup() {
    if mountpoint -q "$fs" 2>/dev/null; then umount "$fs"; fi
    rm -f "$w/fs.img"
}
trap cleanup EXIT
cleanup
rm -rf "$fs"
mkdir -p "$fs"
need=$(( (bytes + msgs * 4096) * (2 * runs + 2) / 1048576 + 512 ))
if [ "$(id -u)" = 0 ] && truncate -s "${need}M" "$w/fs.img" &&
   mkfs.ext4 -q -F -i 4096 -E lazy_itable_init=0,lazy_journal_init=0 "$w/fs.img" &&
   mount -o loop "$w/fs.img" "$fs" 2>/dev/null; then
    where="a fresh ext4 of ${need} MB (loop)"
else
    rm -f "$w/fs.img"
    where="$fs (no fresh file system: numbers may vary with what was deleted before)"
fi
leaver=$fs/vmail/corp.example/wang.wei/Maildir
mkdir -p "$fs/vmail/corp.example/wang.wei"
cp -a "$src" "$leaver"
chown -R 5001:5001 "$fs/vmail/corp.example/wang.wei"
echo "== handover: $msgs files, $bytes bytes, in $where; $runs runs"

: > "$w/times"
# Every run copies into directories of its own (a successor each, with
# --force: the same leaver handed over again), all removed only at the end:
# ext4 looks long for free inodes right after many were deleted (its
# "recently deleted" check: 30 s, 5 min while the inode table is dirty), so
# nothing is deleted between the timed commands, and the deletions before
# them are synced and left to settle (BENCH_HANDOVER_SETTLE seconds).
rm -rf "$w/plans"
mkdir -p "$fs/runs"
{
    echo "address,name,department,status,departed,successor,manager,personal_addresses,mobile"
    echo "wang.wei@corp.example,王伟,sales,leaving,,,,wangwei@163.com,"
    i=1
    while [ "$i" -le "$runs" ]; do echo "succ$i@corp.example,Successor $i,sales,active,,,,,"; i=$((i + 1)); done
} > "$w/employees-runs.csv"
"$bin" directory import employees "$w/employees-runs.csv" > /dev/null
i=1
while [ "$i" -le "$runs" ]; do
    s=$fs/vmail/corp.example/succ$i/Maildir
    mkdir -p "$s/cur" "$s/new" "$s/tmp"
    chown -R 5000:5000 "$fs/vmail/corp.example/succ$i"
    chmod 700 "$s"
    i=$((i + 1))
done
sync
settle=${BENCH_HANDOVER_SETTLE:-35}
mountpoint -q "$fs" && settle=${BENCH_HANDOVER_SETTLE:-0}
echo "== handover: letting the file system settle for $settle s"
sleep "$settle"
i=1
while [ "$i" -le "$runs" ]; do
    s=$fs/vmail/corp.example/succ$i/Maildir
    out=$("$hov" plan --from wang.wei@corp.example --to "succ$i@corp.example" --force 2>&1) ||
        { echo "$out" >&2; die "plan failed"; }
    id=$(echo "$out" | sed -n 's/^plan \([^ ]*\) saved in .*/\1/p')
    # odd runs copy first, even runs apply first
    for what in $(if [ $((i % 2)) -eq 1 ]; then echo cp apply; else echo apply cp; fi); do
        sync
        a=$(now_ns)
        if [ "$what" = cp ]; then
            cp -a "$leaver" "$fs/runs/cp.$i"
        else
            "$hov" apply "$id" > "$w/apply.out" 2>&1 ||
                { cat "$w/apply.out" >&2; die "apply failed"; }
        fi
        b=$(now_ns)
        echo "$what $(secs "$a" "$b")" >> "$w/times"
    done
    [ "${BENCH_HANDOVER_LOG:-}" = debug ] && grep debug "$w/apply.out" | sed 's/^/    /'
    copied=$(find "$s" \( -path '*/cur/*' -o -path '*/new/*' \) -type f | wc -l)
    echo "  run $i: cp -a $(awk '$1 == "cp" { v = $2 } END { print v }' "$w/times") s," \
         "apply $(awk '$1 == "apply" { v = $2 } END { print v }' "$w/times") s" \
         "($copied messages in the successor's Maildir)"
    i=$((i + 1))
done
med() { awk -v k="$1" '$1 == k { print $2 }' "$w/times" | median; }
cp_m=$(med cp)
ap_m=$(med apply)
r=$(ratio "$ap_m" "$cp_m")
verdict=$(awk -v r="$r" 'BEGIN { print (r != "n/a" && r + 0 <= 2.0) ? "within the 2x target" : "OVER the 2x target" }')
cat > "$bench/handover.res" <<RES
handover_messages=$msgs
handover_bytes=$bytes
handover_cp_s=$cp_m
handover_apply_s=$ap_m
handover_ratio=$r
RES
echo "handover: $msgs messages: cp -a $cp_m s, custos-handover apply $ap_m s (medians of $runs): $r x cp -a, $verdict"
rm -rf "$fs/runs" "$fs/vmail"
