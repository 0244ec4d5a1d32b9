#!/bin/sh
# bench/import.sh BUILD - import speed: custos-archive import vs notmuch new
# vs mu index on var/bench/maildir, each into a fresh database, 3 runs each
# (interleaved), the median reported. The page cache is warmed first so no
# tool pays for the first read of the Maildir. The last run's databases stay
# for size.sh and query.sh. Results: var/bench/import.res.
set -eu
BUILD=${1:-build}
. bench/lib.sh
runs=${BENCH_RUNS:-3}

[ -x "$bin" ] || die "$bin not built (make)"
[ -f "$maildir.n" ] || die "no benchmark Maildir (bench/mkcorpus.py)"
n=$(maildir_count)
echo "== import: $n messages, $runs runs each"
echo "warming the page cache"
find "$maildir/cur" "$maildir/new" -type f -exec cat {} + >/dev/null

custos_setup
notmuch_setup
: > "$bench/import.times"

run_custos() {
    rm -rf "$bench/custos"
    "$bin" init >/dev/null
    t0=$(now_ns)
    # Exit status 1: some messages skipped (said on stderr): still a run.
    st=0
    "$bin" import "$maildir" 2>"$bench/custos-import.log" || st=$?
    t1=$(now_ns)
    [ "$st" -le 1 ] || { cat "$bench/custos-import.log" >&2; die "custos-archive import failed ($st)"; }
    echo "custos $(secs "$t0" "$t1")" >> "$bench/import.times"
    echo "  custos  run $1: $(secs "$t0" "$t1") s  ($(tail -n 1 "$bench/custos-import.log"))"
}

run_notmuch() {
    rm -rf "$bench/notmuch"
    mkdir -p "$bench/notmuch"
    t0=$(now_ns)
    notmuch new --quiet >"$bench/notmuch-new.log" 2>&1 || {
        cat "$bench/notmuch-new.log" >&2; die "notmuch new failed"; }
    t1=$(now_ns)
    echo "notmuch $(secs "$t0" "$t1")" >> "$bench/import.times"
    echo "  notmuch run $1: $(secs "$t0" "$t1") s  ($(notmuch count '*') messages indexed)"
}

run_mu() {
    rm -rf "$mu_home"
    t0=$(now_ns)
    { mu init --quiet --maildir="$maildir" --muhome="$mu_home" &&
      mu index --quiet --muhome="$mu_home"; } >"$bench/mu-index.log" 2>&1 || {
        cat "$bench/mu-index.log" >&2; die "mu init/index failed"; }
    t1=$(now_ns)
    echo "mu $(secs "$t0" "$t1")" >> "$bench/import.times"
    echo "  mu      run $1: $(secs "$t0" "$t1") s  ($(mu_count) messages indexed)"
}

mu_count() {
    mu find --muhome="$mu_home" --fields=i '""' 2>/dev/null | wc -l
}

tools="custos"
have notmuch && tools="$tools notmuch" || echo "notmuch not installed: skipped (apt-get install notmuch)"
have mu && tools="$tools mu" || echo "mu not installed: skipped (apt-get install maildir-utils)"

i=1
while [ "$i" -le "$runs" ]; do
    for t in $tools; do
        "run_$t" "$i"
    done
    i=$((i + 1))
done

rate() {
    s=$(awk -v t="$1" '$1 == t { print $2 }' "$bench/import.times" | median)
    [ "$s" = nan ] && { echo "n/a n/a"; return; }
    echo "$s $(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')"
}
set -- $(rate custos); c_s=$1; c_r=$2
set -- $(rate notmuch); n_s=$1; n_r=$2
set -- $(rate mu); m_s=$1; m_r=$2
c_n=$("$bin" stats --json | sed 's/.*"messages":\([0-9]*\).*/\1/')
cat > "$bench/import.res" <<RES
imp_n=$n
imp_custos_s=$c_s
imp_custos_rate=$c_r
imp_custos_indexed=$c_n
imp_notmuch_s=$n_s
imp_notmuch_rate=$n_r
imp_mu_s=$m_s
imp_mu_rate=$m_r
RES
echo "import, median of $runs ($n messages):"
printf '  %-8s %8s s  %8s msgs/s\n' custos "$c_s" "$c_r" notmuch "$n_s" "$n_r" mu "$m_s" "$m_r"
echo "  custos/notmuch $(ratio "$c_r" "$n_r")x (target >= 2x)   custos/mu $(ratio "$c_r" "$m_r")x"
