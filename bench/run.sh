#!/bin/sh
# bench/run.sh BUILD CORPUS - every benchmark (make bench): build the
# Maildir (bench/mkcorpus.py, BENCH_N messages, default 20000, only when it
# is not there yet for that N and those sources), then import.sh, size.sh,
# query.sh, verify.sh, export.sh, detect.sh; a summary table at the end, also in
# var/bench/results.txt. Ratios are against notmuch and mu (and sha256sum
# for verify) measured in the same run; nothing here is asserted. About 10-15 minutes on 2 cores at N=20000; BENCH_N=5000 for a
# quick look.
set -eu
BUILD=${1:-build}
CORPUS=${2:-var/corpus}
. bench/lib.sh
n=${BENCH_N:-20000}
export BENCH_N=$n

[ -x "$bin" ] || die "$bin not built (make)"
[ -d "$CORPUS" ] || die "no corpus in $CORPUS (make corpus)"
have notmuch || echo "bench: notmuch not installed: no baseline for import, size, query"
have mu || echo "bench: mu not installed: no mu baseline for import"
mkdir -p "$bench"
start=$(now_ns)

sources="$CORPUS"
[ -d "$top/tests/data/cjk" ] && sources="$sources $top/tests/data/cjk"
want="$n $sources"
if [ -f "$maildir.n" ] && [ "$(cat "$maildir.n")" = "$want" ]; then
    echo "== corpus: $maildir already holds $n messages from $sources"
else
    echo "== corpus: building $n messages from $sources"
    # shellcheck disable=SC2086
    python3 bench/mkcorpus.py "$maildir" $sources
fi

sh bench/import.sh "$BUILD"
sh bench/size.sh "$BUILD"
sh bench/query.sh "$BUILD"
sh bench/verify.sh "$BUILD"
sh bench/export.sh "$BUILD"
sh bench/detect.sh "$BUILD" "$CORPUS"

. "$bench/import.res"
. "$bench/size.res"
. "$bench/query.res"
. "$bench/verify.res"
. "$bench/export.res"
. "$bench/detect.res"
el=$(secs "$start" "$(now_ns)")
mb=$(awk -v b="$size_raw" 'BEGIN { printf "%.1f", b / 1e6 }')
{
    echo
    echo "custos benchmarks  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) CPUs  N=$imp_n messages, $mb MB raw"
    echo "custos $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')," \
         "$(notmuch --version 2>/dev/null || echo 'no notmuch'), $(mu --version 2>/dev/null | head -n 1 | sed 's/.*version /mu /' || echo 'no mu')"
    echo "----------------------------------------------------------------------------"
    printf '%-22s %12s %12s %12s   %s\n' "" custos notmuch mu "custos vs baseline (target)"
    printf '%-22s %12s %12s %12s   %s\n' "import msgs/s (med 3)" "$imp_custos_rate" "$imp_notmuch_rate" "$imp_mu_rate" \
        "$(ratio "$imp_custos_rate" "$imp_notmuch_rate")x notmuch (>= 2x), $(ratio "$imp_custos_rate" "$imp_mu_rate")x mu"
    printf '%-22s %12s %12s %12s   %s\n' "disk / raw" "${size_custos_ratio}x" "${size_notmuch_ratio}x" "${size_mu_ratio}x" \
        "custos: mail + index; others: index only (<= 1.0x)"
    printf '%-22s %12s %12s %12s   %s\n' "query ms (med of 20)" "$query_custos_ms" "$query_notmuch_ms" "-" \
        "$query_ratio of notmuch (<= 1.0)"
    printf '%-22s %12s %12s %12s   %s\n' "verify MB/s (med 7)" "$verify_custos_mbs" "-" "-" \
        "${verify_ratio}x sha256sum's $verify_sha256sum_mbs MB/s over the same segments (>= 0.7x)"
    printf '%-22s %12s %12s %12s   %s\n' "export s (med 3)" "$export_s" "-" "-" \
        "${export_ratio}x GNU tar of the Maildir ($export_tar_s s); peak RSS ${export_rss_all_kb} KB for all, ${export_rss_ratio}x that of $export_part_messages (flat)"
    printf '%-22s %12s %12s %12s   %s\n' "verify-export s" "$export_verify_s" "-" "-" \
        "${export_verify_ratio}x sha256sum of the export ($export_sha256sum_s s)"
    printf '%-22s %12s %12s %12s   %s\n' "detect ms real mail" "$detect_corpus_med" "-" "-" \
        "median per message, p99 $detect_corpus_p99 ms ($detect_corpus_n messages, every detector)"
    printf '%-22s %12s %12s %12s   %s\n' "detect ms 200 KB" "$detect_big_med" "-" "-" \
        "median per message, p99 $detect_big_p99 ms ($detect_big_n messages with attachments)"
    echo "----------------------------------------------------------------------------"
    echo "custos indexed $imp_custos_indexed of $imp_n; per-query counts: var/bench/query.txt;" \
         "whole run ${el} s"
} | tee "$bench/results.txt"
