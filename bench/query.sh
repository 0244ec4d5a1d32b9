#!/bin/sh
# bench/query.sh BUILD - query latency: custos-archive search --count vs
# notmuch count, on the databases import.sh left. `notmuch count` is the
# equivalent of `search --count`: both count matching messages (not threads)
# and print one number. 20 queries, each run once untimed (warm cache) and
# then 5 times per tool; per query the median; per tool the median of the 20
# medians. Wall time of the whole process (start-up included, as a user sees
# it), less the median time to start /bin/true measured the same way in the
# same run. Results: var/bench/query.res, per query: var/bench/query.txt.
set -eu
BUILD=${1:-build}
. bench/lib.sh
runs=${BENCH_QRUNS:-5}
custos_setup
notmuch_setup

[ -d "$bench/custos" ] || die "no custos archive in $bench/custos (run bench/import.sh first)"
nm=1
have notmuch && [ -d "$bench/notmuch/xapian" ] || { nm=0; echo "notmuch database missing: custos only"; }

# label | custos query | notmuch query. notmuch has no domain: or
# has:attachment (it tags attachment), takes "and not" for -, and does not
# split CJK runs into words, so it finds 客户 only where it stands alone.
queries=$(cat <<'Q'
word: message|message|message
word: python|python|python
word: delivery|delivery|delivery
word: unknown|unknown|unknown
word: subscribe|subscribe|subscribe
two words|mailing list|mailing list
phrase|"mailing list"|"mailing list"
phrase 2|"delivery status"|"delivery status"
prefix|deliver*|deliver*
OR|bounce OR spam|bounce OR spam
NOT|python -list|python and not list
subject:|subject:test|subject:test
from: name|from:barry|from:barry
from: domain|from:@python.org|from:python.org
date range|date:2000..2005|date:2000-01-01..2005-12-31
date + word|after:2010 error|date:2010-01-01.. and error
attachment|has:attachment|tag:attachment
Chinese 客户|客户|客户
Chinese 名单|名单|名单
Chinese 资料|资料|资料
Q
)

# ms for one run of "$@" (less nothing; the caller subtracts the baseline).
time_ms() {
    t0=$(now_ns)
    "$@" >/dev/null 2>&1 || true
    t1=$(now_ns)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'
}

# Median of $runs runs of "$@", in ms.
med_ms() {
    "$@" >/dev/null 2>&1 || true
    i=0
    while [ "$i" -lt "$runs" ]; do
        time_ms "$@"
        i=$((i + 1))
    done | median
}

base=$(med_ms /bin/true)
echo "== query: 20 queries x $runs runs per tool (start-up baseline /bin/true: $base ms, subtracted)"
: > "$bench/query.c.ms"
: > "$bench/query.n.ms"
{
    printf '%-14s %-28s %9s %9s %10s %10s\n' query custos-query custos# notmuch# custos-ms notmuch-ms
    echo "$queries" | while IFS='|' read -r label cq nq; do
        c_cnt=$("$bin" search --count -- "$cq" 2>/dev/null || echo err)
        c_ms=$(med_ms "$bin" search --count -- "$cq")
        c_ms=$(awk -v a="$c_ms" -v b="$base" 'BEGIN { printf "%.2f", a - b }')
        echo "$c_ms" >> "$bench/query.c.ms"
        n_cnt=- n_ms=-
        if [ "$nm" = 1 ]; then
            n_cnt=$(notmuch count -- "$nq" 2>/dev/null || echo err)
            n_ms=$(med_ms notmuch count -- "$nq")
            n_ms=$(awk -v a="$n_ms" -v b="$base" 'BEGIN { printf "%.2f", a - b }')
            echo "$n_ms" >> "$bench/query.n.ms"
        fi
        printf '%-14s %-28s %9s %9s %10s %10s\n' "$label" "$cq" "$c_cnt" "$n_cnt" "$c_ms" "$n_ms"
    done
} | tee "$bench/query.txt"
c_med=$(median < "$bench/query.c.ms")
n_med=$(median < "$bench/query.n.ms")
cat > "$bench/query.res" <<RES
query_base_ms=$base
query_custos_ms=$c_med
query_notmuch_ms=$n_med
query_ratio=$(ratio "$c_med" "$n_med")
RES
echo "median over 20 queries: custos $c_med ms, notmuch $n_med ms," \
     "custos/notmuch $(ratio "$c_med" "$n_med") (target <= 1.0)"
