#!/bin/sh
# bench/export.sh BUILD - evidence export over the archive import.sh left in
# var/bench/custos: custos-archive export --format tar of every message vs
# GNU tar of the same messages' Maildir files (the baseline: the bytes
# written, no hashing or chain work), and verify-export of that export vs
# sha256sum of it; then peak memory of an export of all messages vs one of
# those with attachments (a few percent), which must be flat (the export
# streams). Medians
# of BENCH_EXPORT_RUNS (3) runs, same run for every figure. Results:
# var/bench/export.res.
set -eu
BUILD=${1:-build}
. bench/lib.sh
runs=${BENCH_EXPORT_RUNS:-3}

[ -x "$bin" ] || die "$bin not built (make)"
custos_setup
[ -f "$bench/custos/index.db" ] || die "no archive in $bench/custos (run bench/import.sh first)"
# An archive of an older custos is upgraded by its first writer.
"$bin" checkpoint > /dev/null 2>&1 || true
out=$bench/export
rm -rf "$out"
mkdir -p "$out"
nmsg=$("$bin" stats --json | sed -n 's/.*"messages": *\([0-9]*\).*/\1/p')
echo "== export: $nmsg messages, $runs runs each"

# Peak RSS (KB) and seconds of a command: /usr/bin/time -f.
timed() {
    /usr/bin/time -f '%e %M' -o "$out/time" "$@" > /dev/null 2> "$out/err" ||
        { cat "$out/err" >&2; die "$* failed"; }
    cat "$out/time"
}

# A part of them for the memory comparison: those with attachments.
part_q='has:attachment'
npart=$("$bin" search --count "$part_q")
: > "$out/times"
i=1
while [ "$i" -le "$runs" ]; do
    rm -f "$out/all.tar" "$out/part.tar" "$out/maildir.tar"
    set -- $(timed tar -cf "$out/maildir.tar" -C "$maildir" cur new)
    echo "tar $1 $2" >> "$out/times"
    set -- $(timed "$bin" export --format tar -o "$out/all.tar" '*')
    echo "export $1 $2" >> "$out/times"
    set -- $(timed sha256sum "$out/all.tar")
    echo "sha256sum $1 $2" >> "$out/times"
    set -- $(timed "$bin" verify-export "$out/all.tar")
    echo "verify-export $1 $2" >> "$out/times"
    set -- $(timed "$bin" export --format tar -o "$out/part.tar" "$part_q")
    echo "part $1 $2" >> "$out/times"
    echo "  run $i: $(tail -n 5 "$out/times" | tr '\n' ' ')"
    i=$((i + 1))
done
med() { awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$out/times" | median; }
tar_s=$(med tar 2); exp_s=$(med export 2); sha_s=$(med sha256sum 2); vex_s=$(med verify-export 2)
exp_kb=$(med export 3); part_kb=$(med part 3)
bytes=$(wc -c < "$out/all.tar")
cat > "$bench/export.res" <<RES
export_messages=$nmsg
export_bytes=$bytes
export_s=$exp_s
export_tar_s=$tar_s
export_ratio=$(ratio "$tar_s" "$exp_s")
export_verify_s=$vex_s
export_sha256sum_s=$sha_s
export_verify_ratio=$(ratio "$sha_s" "$vex_s")
export_rss_all_kb=$exp_kb
export_rss_part_kb=$part_kb
export_part_messages=$npart
export_rss_ratio=$(ratio "$exp_kb" "$part_kb")
RES
echo "export: $nmsg messages ($bytes bytes) in ${exp_s} s, GNU tar of the Maildir ${tar_s} s:" \
     "$(ratio "$tar_s" "$exp_s")x tar's speed"
echo "verify-export: ${vex_s} s, sha256sum of the export ${sha_s} s: $(ratio "$sha_s" "$vex_s")x"
echo "peak RSS: all $nmsg messages ${exp_kb} KB, $npart of them ${part_kb} KB:" \
     "$(ratio "$exp_kb" "$part_kb")x (flat: the export streams)"
rm -f "$out/all.tar" "$out/part.tar" "$out/maildir.tar"
