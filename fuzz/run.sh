#!/bin/sh
# run.sh BUILD NAME SECONDS WORKDIR [libFuzzer option...]
#
# Run the libFuzzer target BUILD/fuzz/fuzz-NAME for SECONDS on WORKDIR
# (new inputs are written there) and the seed corpus tests/fuzz/NAME, with
# fuzz/NAME.dict if there is one. The log goes to BUILD/fuzz/NAME.log.
# A crash, leak, timeout, out-of-memory or UBSan report exits 1 and prints
# the end of the log and the input that did it (kept in BUILD/fuzz/crash/).
# Reproduce with: BUILD/fuzz/fuzz-NAME FILE
set -u
build=$1 name=$2 secs=$3 work=$4
shift 4
bin=$build/fuzz/fuzz-$name
seeds=tests/fuzz/$name
crash=$build/fuzz/crash
log=$build/fuzz/$name.log
dict=
[ -f "fuzz/$name.dict" ] && dict=-dict=fuzz/$name.dict
mkdir -p "$work" "$crash"
echo "fuzz-$name: ${secs} s on $seeds + $work"
"$bin" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$crash/$name-" $dict "$@" "$work" "$seeds" >"$log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz-$name: FAILED (exit $rc), full log in $log"
    sed -n 's/.*Test unit written to \(.*\)$/fuzz-'"$name"': input: \1/p' "$log"
    sed -n 's/.*Test unit written to \(.*\)$/fuzz-'"$name"': reproduce: '"$(echo "$bin" | sed 's/[\/&]/\\&/g')"' \1/p' "$log"
    echo "fuzz-$name: (a leak's full stack: ASAN_OPTIONS=fast_unwind_on_malloc=0)"
    exit 1
fi
# the last "#123 NEW cov: 1 ft: 2 corp: 3/4Kb ..." line and the final stats
done_line=$(grep -a '^#[0-9].* cov: ' "$log" | tail -n 1)
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
cov=$(echo "$done_line" | sed -n 's/.*\(cov: [0-9]* ft: [0-9]* corp: [^ ]*\).*/\1/p')
echo "fuzz-$name: ok, $runs runs, $rate exec/s, $cov"
