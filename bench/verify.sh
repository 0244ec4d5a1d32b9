#!/bin/sh
# bench/verify.sh BUILD - verify's speed against the physical limit:
# custos-archive verify over the archive import.sh left in var/bench/custos
# (BENCH_N messages) vs sha256sum over the same segment files, in the same
# run, interleaved, page cache warm for both (BENCH_VERIFY_RUNS runs each,
# default 7; the medians are reported). MB/s are of segment bytes on disk.
# A verify that reports a problem fails the benchmark. Results:
# var/bench/verify.res. Target: verify >= 0.7x sha256sum.
set -eu
BUILD=${1:-build}
. bench/lib.sh
runs=${BENCH_VERIFY_RUNS:-7}

[ -x "$bin" ] || die "$bin not built (make)"
custos_setup
[ -f "$bench/custos/index.db" ] || die "no archive in $bench/custos (run bench/import.sh first)"
segs=$(find "$bench/custos/store" -name 'seg-*.cseg' | sort)
bytes=$(cat $segs | wc -c)
nmsg=$("$bin" stats --json | sed -n 's/.*"messages": *\([0-9]*\).*/\1/p')
echo "== verify: $nmsg messages, $bytes bytes in $(echo "$segs" | wc -l) segment(s), $runs runs each"
cat $segs > /dev/null
: > "$bench/verify.times"
i=1
while [ "$i" -le "$runs" ]; do
    t0=$(now_ns)
    # shellcheck disable=SC2086
    sha256sum $segs > /dev/null
    t1=$(now_ns)
    st=0
    "$bin" verify > "$bench/verify.out" 2>&1 || st=$?
    t2=$(now_ns)
    [ "$st" -eq 0 ] || { cat "$bench/verify.out" >&2; die "custos-archive verify found problems ($st)"; }
    echo "sha256sum $(secs "$t0" "$t1")" >> "$bench/verify.times"
    echo "custos $(secs "$t1" "$t2")" >> "$bench/verify.times"
    echo "  run $i: sha256sum $(secs "$t0" "$t1") s, custos-archive verify $(secs "$t1" "$t2") s"
    i=$((i + 1))
done
sha=$(awk '$1 == "sha256sum" { print $2 }' "$bench/verify.times" | median)
cus=$(awk '$1 == "custos" { print $2 }' "$bench/verify.times" | median)
sha_mbs=$(awk -v b="$bytes" -v t="$sha" 'BEGIN { printf "%.0f", b / 1e6 / t }')
cus_mbs=$(awk -v b="$bytes" -v t="$cus" 'BEGIN { printf "%.0f", b / 1e6 / t }')
cat > "$bench/verify.res" <<RES
verify_bytes=$bytes
verify_messages=$nmsg
verify_custos_s=$cus
verify_sha256sum_s=$sha
verify_custos_mbs=$cus_mbs
verify_sha256sum_mbs=$sha_mbs
verify_ratio=$(ratio "$cus_mbs" "$sha_mbs")
RES
echo "verify: custos-archive verify ${cus_mbs} MB/s (median ${cus} s), sha256sum ${sha_mbs} MB/s" \
     "(median ${sha} s): $(ratio "$cus_mbs" "$sha_mbs")x (target >= 0.7x)"
echo "($(tail -n 1 "$bench/verify.out"))"
