#!/bin/sh
# bench/size.sh BUILD - bytes on disk: the custos archive (store + index, as
# `custos-archive stats --json` counts them: stored_bytes + index_bytes)
# against the raw bytes of var/bench/maildir; notmuch's and mu's Xapian
# databases against the same raw bytes, for reference (they index only: the
# mail stays in the Maildir beside them, while custos holds the mail itself).
# Needs the databases import.sh left. Results: var/bench/size.res.
set -eu
BUILD=${1:-build}
. bench/lib.sh
custos_setup

[ -d "$bench/custos" ] || die "no custos archive in $bench/custos (run bench/import.sh first)"
raw=$(maildir_bytes)
n=$(maildir_count)
json=$("$bin" stats --json)
field() { echo "$json" | sed "s/.*\"$1\":\([0-9.]*\).*/\1/"; }
stored=$(field stored_bytes)
index=$(field index_bytes)
custos=$((stored + index))
# du -sb: apparent bytes of every file in the database directory.
dbytes() { [ -d "$1" ] && du -sb "$1" | cut -f1 || echo ""; }
nm=$(dbytes "$bench/notmuch")
mu=$(dbytes "$mu_home")

mb() { awk -v b="$1" 'BEGIN { if (b == "") print "n/a"; else printf "%.1f MB", b / 1e6 }'; }
cat > "$bench/size.res" <<RES
size_raw=$raw
size_custos=$custos
size_custos_stored=$stored
size_custos_index=$index
size_custos_ratio=$(ratio "$custos" "$raw")
size_notmuch=$nm
size_notmuch_ratio=$(ratio "$nm" "$raw")
size_mu=$mu
size_mu_ratio=$(ratio "$mu" "$raw")
RES
echo "== size: $n messages, $(mb "$raw") raw in the Maildir"
echo "  custos store + index: $(mb "$custos") = $(ratio "$custos" "$raw")x raw (target <= 1.0x)"
echo "      store $(mb "$stored") ($(ratio "$stored" "$raw")x), index $(mb "$index") ($(ratio "$index" "$raw")x)"
echo "  notmuch index only:   $(mb "$nm") = $(ratio "$nm" "$raw")x raw (+ the Maildir itself)"
echo "  mu index only:        $(mb "$mu") = $(ratio "$mu" "$raw")x raw (+ the Maildir itself)"
