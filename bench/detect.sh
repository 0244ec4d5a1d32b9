#!/bin/sh
# bench/detect.sh BUILD [CORPUS] - detector time per message (median, p99):
# custos-milter's classification and every detector (build/detbench), with
# the fixture directory of tests/detect imported into a scratch archive, on
#  1. the real-mail corpus: the messages bench/mkcorpus.py takes from CORPUS
#     (Debian packages' test mail), tests/data/cjk and the labelled scenarios
#     of tests/detect, BENCH_DETECT_N of them (default 2000);
#  2. 200 KB sales messages with attachments (xlsx, zip of CSV, vCard, an
#     attached message, a PDF-like binary; GBK and UTF-8, base64 and QP):
#     bench/mkdetmail.py, BENCH_DETECT_BIG of them (default 200).
# Each message is handled as if li.na@corp.example (sales) sent it to its
# own To/Cc, a customer (purchasing@xingchen.example) and a 163.com address,
# so every detector does its whole work. Parse time (GMime and the message
# model) is shown beside it. Results: var/bench/detect.res and .txt.
set -eu
BUILD=${1:-build}
CORPUS=${2:-var/corpus}
. bench/lib.sh
case $BUILD in /*) bdir=$BUILD ;; *) bdir=$top/$BUILD ;; esac
n=${BENCH_DETECT_N:-2000}
big=${BENCH_DETECT_BIG:-200}
work=$bench/detect

[ -x "$bdir/detbench" ] || die "$bdir/detbench not built (make)"
[ -d "$CORPUS" ] || die "no corpus in $CORPUS (make corpus)"
rm -rf "$work"
mkdir -p "$work"
cat > "$work/custos.conf" <<CONF
[archive]
dir = $work/archive
departments = sales
[directory]
webmail_domains = $top/conf/webmail-domains.txt
[log]
level = warning
CONF
arc() { "$bdir/custos-archive" -c "$work/custos.conf" "$@" >/dev/null; }
arc init
for l in employees customers accounts; do
    arc directory import $l "$top/tests/detect/directory/$l.csv"
done
arc import "$top/tests/detect/archive"

echo "== detect: corpus of $n real messages; $big messages of ~200 KB"
BENCH_N=$n python3 bench/mkcorpus.py "$work/corpus" "$CORPUS" "$top/tests/data/cjk" \
    "$top/tests/detect/scenarios" >/dev/null
python3 bench/mkdetmail.py "$work/big" "$big"

rc="-r purchasing@xingchen.example -r someone2024@163.com"
# shellcheck disable=SC2086
"$bdir/detbench" -c "$work/custos.conf" $rc -l "real mail" "$work/corpus/cur" \
    | tee "$work/corpus.txt"
# shellcheck disable=SC2086
"$bdir/detbench" -c "$work/custos.conf" $rc -l "200 KB + attachments" "$work/big" \
    | tee "$work/big.txt"

field() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" "$2"; }
{
    echo "detect_corpus_n=$(sed -n 's/^[^:]*: \([0-9]*\) messages.*/\1/p' "$work/corpus.txt")"
    echo "detect_corpus_med=$(field 'detect ms median' "$work/corpus.txt")"
    echo "detect_corpus_p99=$(sed -n 's/.*detect ms median [0-9.]* p99 \([0-9.]*\).*/\1/p' "$work/corpus.txt")"
    echo "detect_big_n=$(sed -n 's/^[^:]*: \([0-9]*\) messages.*/\1/p' "$work/big.txt")"
    echo "detect_big_med=$(field 'detect ms median' "$work/big.txt")"
    echo "detect_big_p99=$(sed -n 's/.*detect ms median [0-9.]* p99 \([0-9.]*\).*/\1/p' "$work/big.txt")"
} > "$bench/detect.res"
cat "$work/corpus.txt" "$work/big.txt" > "$bench/detect.txt"
rm -rf "$work/archive" "$work/big" "$work/corpus"
