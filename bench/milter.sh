#!/bin/sh
# bench/milter.sh [BUILD] - what custos-milter costs Postfix, in messages/s
#
# One private Postfix on 127.0.0.1 (own config, queue and log under a temp
# dir) relaying everything to smtp-sink, with one smtpd listener per setup:
#   none            no milter (the baseline)
#   null-*          bench/nullmilter (every callback, does nothing)
#   null0-*         bench/nullmilter -m none (no callback: Postfix skips what it can)
#   custos-*        custos-milter: archiving, the sample directory (every message
#                   classified, every detector run), ingest --follow running
#   custos-nagle-*  the same with [milter] tcp_nodelay = false (inet only)
# each over a unix socket and over inet on 127.0.0.1. smtp-source pushes N
# messages of 10 KB and of 200 KB over SESS sessions into each listener,
# RUNS times, setups interleaved; the queue (and the archive's spool) is
# drained between runs, outside the timing. Printed: the median msg/s of
# each setup and the ratios against the baselines of this same run. Then a
# sustained load (LONG_N messages, longer than [spool] ingest_delay, so
# ingest archives while mail comes) and custos-milter's peak resident
# memory with 10 KB and with 10 MB messages.
#
# CPU per message: each part runs in a cpuacct cgroup of its own (Postfix
# with all its daemons, the milter, ingest, smtp-source and smtp-sink), and
# the CPU each used from the start of a push to the end of its drain
# (everything those N messages cost, delivery and archiving included) is
# divided by N. On a shared machine the msg/s figures swing with the load;
# CPU per message does much less, and "cpu x" (the no-milter CPU per
# message over the setup's) is the rate ratio to expect when CPU is what
# limits. Without cgroup v1 cpuacct (or not root) only msg/s is printed.
#
# Needs root (Postfix's master) and `make` done. Only 127.0.0.1 is used.
#   sh bench/milter.sh            RUNS=3 N=2000 SESS=10
#   RUNS=1 N=300 sh bench/milter.sh   (a quick look)
#   SETUPS="none null-unix custos-unix" MEM=0 LONG_RUNS=0 sh bench/milter.sh
#                                       (some setups, no memory or sustained run)
set -eu

BUILD=${1:-build}
RUNS=${RUNS:-3}
N=${N:-2000}
SESS=${SESS:-10}
BIG_N=${BIG_N:-40}
SIZES=${SIZES:-"10240 204800"}
SETUPS=${SETUPS:-"none null-unix null-inet null0-unix null0-inet custos-unix custos-inet custos-nagle-inet"}
MEM=${MEM:-1}
LONG_N=${LONG_N:-12000}
LONG_RUNS=${LONG_RUNS:-2}

case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/milter.sh: must run as root (Postfix's master)" >&2; exit 1; }
for b in custos-milter nullmilter custos-archive; do
    [ -x "$BUILD/$b" ] || { echo "bench/milter.sh: $BUILD/$b missing: run make" >&2; exit 1; }
done
for b in /usr/sbin/smtp-source /usr/sbin/smtp-sink /usr/lib/postfix/sbin/master; do
    [ -x $b ] || { echo "bench/milter.sh: $b missing: make deps" >&2; exit 1; }
done

T=$(mktemp -d /tmp/custos-bench-milter.XXXXXX)
chmod 0755 "$T"
PIDS=""
MASTER=""
# cpuacct groups, one per part (see above); CG empty: no CPU figures
GROUPS_CPU="postfix milter ingest smtp"
CG=""
if [ -d /sys/fs/cgroup/cpuacct ] && mkdir "/sys/fs/cgroup/cpuacct/custos-bench.$$" 2>/dev/null; then
    CG=/sys/fs/cgroup/cpuacct/custos-bench.$$
    for g in $GROUPS_CPU; do mkdir "$CG/$g"; done
fi
cg_rmdir() {
    [ -n "$CG" ] || return 0
    for g in $GROUPS_CPU; do
        i=0
        while ! rmdir "$CG/$g" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    done
    rmdir "$CG" 2>/dev/null || true
}
cleanup() {
    if [ -n "$MASTER" ]; then
        kids=$(ps -o pid= --ppid "$MASTER" 2>/dev/null || true)
        kill "$MASTER" 2>/dev/null || true
        i=0; while kill -0 "$MASTER" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        for k in $kids; do
            i=0; while kill -0 "$k" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
            kill -9 "$k" 2>/dev/null || true
        done
    fi
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    cg_rmdir
    [ -z "${CPU_IDLE:-}" ] || rmdir "$CPU_IDLE" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# ---- milters ---------------------------------------------------------------
mkdir -p "$T/spool" "$T/archive"
chown nobody:postfix "$T/spool"
chmod 0770 "$T/spool"
P_NULL=$(port); P_NULL0=$(port); P_CUS=$(port); P_NAGLE=$(port)
custos_conf() { # NAME SOCKET [EXTRA]
    cat > "$T/$1.conf" <<EOF
[archive]
dir = $T/archive
group = postfix
[directory]
webmail_domains = $SRC/conf/webmail-domains.txt
[spool]
dir = $T/spool
[milter]
socket = $2
user = nobody
group = postfix
${3:-}
[log]
level = warning
EOF
}
custos_conf custos-unix "unix:$T/custos.sock"
custos_conf custos-inet "inet:$P_CUS@127.0.0.1"
custos_conf custos-nagle "inet:$P_NAGLE@127.0.0.1" "tcp_nodelay = false"
"$BUILD/custos-archive" -c "$T/custos-unix.conf" init > /dev/null
# the sample directory: every message is classified and the detectors run
"$BUILD/custos-archive" -c "$T/custos-unix.conf" directory import employees \
    "$SRC/conf/employees.sample.csv" > /dev/null
"$BUILD/custos-archive" -c "$T/custos-unix.conf" directory import customers \
    "$SRC/conf/customers.sample.csv" > /dev/null

# CMD... run in cpuacct group GROUP: a shell enters it, then execs CMD
# (so the PID is CMD's); without cgroups the shell only execs
cg_dir() { if [ -n "$CG" ]; then echo "$CG/$1"; else echo -; fi; }
in_group() { # GROUP CMD...
    g=$(cg_dir "$1"); shift
    sh -c '[ "$0" = - ] || echo $$ > "$0/cgroup.procs"; exec "$@"' "$g" "$@"
}
start_bg() { # GROUP LOG CMD...
    g=$(cg_dir "$1"); log=$2; shift 2
    sh -c '[ "$0" = - ] || echo $$ > "$0/cgroup.procs"; exec "$@"' "$g" "$@" >> "$log" 2>&1 &
    PIDS="$PIDS $!"
}
start_custos() { # NAME
    start_bg milter "$T/$1.log" "$BUILD/custos-milter" -f -c "$T/$1.conf"
    eval "PID_$(echo "$1" | tr - _)=\$!"
}
# the null milters are idle while custos is measured, and the other way round
start_bg milter "$T/null.log" "$BUILD/nullmilter" -p "unix:$T/null.sock"
start_bg milter "$T/null.log" "$BUILD/nullmilter" -p "inet:$P_NULL@127.0.0.1"
start_bg milter "$T/null.log" "$BUILD/nullmilter" -m none -p "unix:$T/null0.sock"
start_bg milter "$T/null.log" "$BUILD/nullmilter" -m none -p "inet:$P_NULL0@127.0.0.1"
start_custos custos-unix
start_custos custos-inet
start_custos custos-nagle
# ingest at the lowest priority (CPU and I/O), as custos-ingest.service runs it: the spool
# absorbs bursts, the archive catches up when Postfix leaves CPU to spare. nice alone
# is not that: with the kernel's autogroups (sched_autogroup_enabled) nice only ranks
# the processes of one session, and Postfix's master runs in a session of its own.
# So, like CPUWeight=idle in the unit, ingest also gets a cpu cgroup of the lowest
# weight (cgroup v1 cpu.shares 2), outside the autogroups.
CPU_IDLE=""
if [ -d /sys/fs/cgroup/cpu ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ] &&
        mkdir "/sys/fs/cgroup/cpu/custos-bench-idle.$$" 2>/dev/null; then
    CPU_IDLE=/sys/fs/cgroup/cpu/custos-bench-idle.$$
    echo 2 > "$CPU_IDLE/cpu.shares"
    [ ! -f "$CPU_IDLE/cpu.idle" ] || echo 1 > "$CPU_IDLE/cpu.idle"
fi
# ingest once custos-milter has made the spool's directories (as nobody): made
# first by ingest, as root, they would be root's, and every message 451
i=0
while [ ! -d "$T/spool/journal" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
start_bg ingest "$T/ingest.log" sh -c '[ -z "$0" ] || echo $$ > "$0/cgroup.procs"; exec "$@"' \
    "$CPU_IDLE" nice -n 19 ionice -c 3 "$BUILD/custos-archive" -c "$T/custos-unix.conf" ingest --follow
sleep 1
chmod 0666 "$T/null.sock" "$T/null0.sock"

# ---- Postfix and smtp-sink -------------------------------------------------
P_SINK=$(port)
start_bg smtp "$T/sink.log" /usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$P_SINK" 1000
mkdir -p "$T/conf" "$T/queue" "$T/data"
chown postfix "$T/data"
cat > "$T/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $T/queue
data_directory = $T/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = custos-bench.localdomain
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$P_SINK
maillog_file = $T/maillog
maillog_file_prefixes = /var, /dev/stdout, /tmp
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject
message_size_limit = 104857600
milter_default_action = tempfail
milter_protocol = 6
biff = no
EOF
milter_of() {
    case $1 in
    none) echo "" ;;
    null-unix) echo "unix:$T/null.sock" ;;
    null-inet) echo "inet:127.0.0.1:$P_NULL" ;;
    null0-unix) echo "unix:$T/null0.sock" ;;
    null0-inet) echo "inet:127.0.0.1:$P_NULL0" ;;
    custos-unix) echo "unix:$T/custos.sock" ;;
    custos-inet) echo "inet:127.0.0.1:$P_CUS" ;;
    custos-nagle-inet) echo "inet:127.0.0.1:$P_NAGLE" ;;
    esac
}
: > "$T/conf/master.cf"
for s in $SETUPS; do
    p=$(port)
    eval "PORT_$(echo "$s" | tr - _)=$p"
    echo "127.0.0.1:$p inet n - n - - smtpd -o smtpd_milters=$(milter_of "$s")" >> "$T/conf/master.cf"
done
cat >> "$T/conf/master.cf" <<'EOF'
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
postfix -c "$T/conf" check
sh -c '[ "$0" = - ] || echo $$ > "$0/cgroup.procs"; exec "$@"' "$(cg_dir postfix)" \
    setsid /usr/lib/postfix/sbin/master -d -c "$T/conf" < /dev/null > "$T/master.log" 2>&1 &
MASTER=$!
sleep 2

# files in the queue, counted here (postqueue would make showq work, and
# that CPU would count as Postfix's)
queued() {
    find "$T/queue/maildrop" "$T/queue/incoming" "$T/queue/active" "$T/queue/deferred" \
        -type f 2>/dev/null | wc -l
}
drain() { # the queue empty, the spool ingested (the milter's journal handed over too)
    i=0
    while [ "$(queued)" -gt 0 ] || [ "$(ls "$T/spool/new" "$T/spool/journal" 2>/dev/null |
            grep -c '^[0-9]')" -gt 0 ]; do
        i=$((i+1)); [ $i -lt 6000 ] || { echo "bench/milter.sh: queue does not drain" >&2; exit 1; }
        [ $((i % 100)) -ne 0 ] || postqueue -c "$T/conf" -f
        sleep 0.05
    done
}

# CPU ns used so far by each group, "g=ns ..." (empty without cgroups)
cpu_snap() {
    [ -n "$CG" ] || return 0
    for g in $GROUPS_CPU; do printf '%s=%s ' "$g" "$(cat "$CG/$g/cpuacct.usage")"; done
}
# ms per message of each group between two snapshots, and the total:
# "postfix milter ingest smtp total"
cpu_per_msg() { # SNAP0 SNAP1 COUNT
    python3 -c '
import sys
a = dict(kv.split("=") for kv in sys.argv[1].split())
b = dict(kv.split("=") for kv in sys.argv[2].split())
n = int(sys.argv[3]); gs = sys.argv[4].split()
v = [(int(b[g]) - int(a[g])) / 1e6 / n for g in gs]
print(" ".join("%.3f" % x for x in v + [sum(v)]))' "$1" "$2" "$3" "$GROUPS_CPU"
}

# Push COUNT messages of SIZE into SETUP's listener and drain: sets RATE
# (msg/s of the push) and CPU (cpu_per_msg, push and drain; "" without cgroups)
push() { # SETUP SIZE COUNT
    p=$(eval "echo \$PORT_$(echo "$1" | tr - _)")
    c0=$(cpu_snap)
    t0=$(now)
    in_group smtp /usr/sbin/smtp-source -s "$SESS" -l "$2" -m "$3" -f li.na@corp.example \
        -t buyer@acme.example "127.0.0.1:$p"
    t1=$(now)
    cm=$(cpu_snap)
    drain
    c1=$(cpu_snap)
    RATE=$(python3 -c "print('%.1f' % ($3 / ($t1 - $t0)))")
    CPU=""
    CPU_PUSH=""
    [ -z "$CG" ] || CPU=$(cpu_per_msg "$c0" "$c1" "$3")
    [ -z "$CG" ] || CPU_PUSH=$(cpu_per_msg "$c0" "$cm" "$3")
}

median() { python3 -c 'import sys, statistics; v=[float(x) for x in sys.argv[1:]]; print("%.1f" % statistics.median(v))' "$@"; }

echo "custos-milter benchmark: $N messages x $SESS sessions, sizes $SIZES, $RUNS runs (median)"
echo "Postfix $(postconf -d -h mail_version), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $T"
[ -n "$CG" ] || echo "(no cpuacct cgroup: CPU per message not measured)"
v_of() { echo "$1" | tr - _; }
has() { case " $SETUPS " in *" $1 "*) return 0 ;; esac; return 1; }
# warm-up, not counted: Postfix's daemons started, caches filled
for s in $SETUPS; do push "$s" 10240 200; done
for size in $SIZES; do
    for s in $SETUPS; do eval "R_$(v_of "$s")=''; C_$(v_of "$s")=''"; done
    drain
    for run in $(seq "$RUNS"); do
        for s in $SETUPS; do
            push "$s" "$size" "$N"
            v=$(v_of "$s")
            eval "R_$v=\"\$R_$v $RATE\""
            # per run: the CPU figures joined with commas
            [ -z "$CPU" ] || eval "C_$v=\"\$C_$v $(echo "$CPU" | tr ' ' ,)\""
            echo "  run $run size $size $s: $RATE msg/s${CPU:+, CPU ms/msg (postfix milter ingest smtp total) $CPU, of it in the push $CPU_PUSH}" >&2
        done
    done
    echo
    echo "size $size bytes (load now $(cut -d' ' -f1-3 /proc/loadavg)):"
    printf "  %-18s %8s %6s  %s\n" setup "msg/s" "" "runs"
    for s in $SETUPS; do
        v=$(v_of "$s")
        runs=$(eval "echo \$R_$v")
        m=$(median $runs)
        eval "M_$v=$m"
        printf "  %-18s %8s %6s  %s\n" "$s" "$m" "" "$runs"
    done
    if [ -n "$CG" ]; then
        echo "  CPU ms per message (median of the runs; push and drain):"
        printf "  %-18s %8s %8s %8s %8s %8s %7s\n" setup postfix milter ingest smtp total "cpu x"
        for s in $SETUPS; do
            v=$(v_of "$s")
            line=$(python3 -c '
import statistics, sys
runs = [[float(x) for x in r.split(",")] for r in sys.argv[1].split()]
print(" ".join("%.3f" % statistics.median(col) for col in zip(*runs)))' "$(eval "echo \$C_$v")")
            eval "CT_$v=$(echo "$line" | cut -d' ' -f5)"
            set -- $line
            base=$(eval "echo \${CT_none:-}")
            x=$( [ -n "$base" ] && python3 -c "print('%.2f' % ($base / $5))" || echo "")
            printf "  %-18s %8s %8s %8s %8s %8s %7s\n" "$s" "$1" "$2" "$3" "$4" "$5" "$x"
        done
    fi
    for sock in unix inet; do
        has none && has "null-$sock" && has "custos-$sock" && has "null0-$sock" || continue
        c=$(eval "echo \$M_custos_$sock"); n=$(eval "echo \$M_null_$sock"); n0=$(eval "echo \$M_null0_$sock")
        python3 -c "print('  %s: custos/null %.2fx (target >= 0.8), custos/no-milter %.2fx (target >= 0.65), null/no-milter %.2fx, null0/no-milter %.2fx' % ('$sock', $c/$n, $c/$M_none, $n/$M_none, $n0/$M_none))"
        # the same ratios run by run: each setup against the baselines pushed
        # in the same run, minutes apart, so under much the same load
        python3 -c '
import statistics, sys
sock, c, n, none = sys.argv[1], *[[float(x) for x in a.split()] for a in sys.argv[2:]]
def line(name, num, den):
    r = [a / b for a, b in zip(num, den)]
    return "%s %s (median %.2fx)" % (name, " ".join("%.2f" % x for x in r), statistics.median(r))
print("  %s, run by run: %s; %s" % (sock, line("custos/null", c, n), line("custos/no-milter", c, none)))' \
            "$sock" "$(eval "echo \$R_custos_$sock")" "$(eval "echo \$R_null_$sock")" "$R_none"
        if [ -n "$CG" ]; then
            c=$(eval "echo \$CT_custos_$sock"); n=$(eval "echo \$CT_null_$sock")
            python3 -c "print('  %s by CPU per message: custos/null %.2fx, custos/no-milter %.2fx, null/no-milter %.2fx' % ('$sock', $n/$c, $CT_none/$c, $CT_none/$n))"
        fi
    done
    if has custos-nagle-inet && has custos-inet; then
        python3 -c "print('  inet: custos with Nagle (tcp_nodelay = false) %.1f msg/s, %.2fx of custos-inet' % ($M_custos_nagle_inet, $M_custos_nagle_inet/$M_custos_inet))"
    fi
done

# ---- sustained load: longer than [spool] ingest_delay -----------------------
# A push of N messages lasts a few seconds, mostly less than ingest_delay
# (5 s), and then ingest archives it after the push. Under a load that does
# not pause, ingest runs every ingest_delay seconds while mail comes: LONG_N
# messages of 10 KB (several times ingest_delay at these rates), LONG_RUNS
# runs each, show what custos costs then.
if [ "$LONG_RUNS" -gt 0 ] && has none && has null-unix && has custos-unix; then
    R_none=''; R_null_unix=''; R_custos_unix=''; IP=''
    drain
    for run in $(seq "$LONG_RUNS"); do
        for s in none null-unix custos-unix; do
            push "$s" 10240 "$LONG_N"
            v=$(v_of "$s")
            eval "R_$v=\"\$R_$v $RATE\""
            [ "$s" != custos-unix ] || [ -z "$CPU" ] ||
                IP="$IP $(echo "$CPU_PUSH" | cut -d' ' -f3)/$(echo "$CPU" | cut -d' ' -f3)"
            echo "  sustained run $run $s: $RATE msg/s${CPU:+, CPU ms/msg (postfix milter ingest smtp total) $CPU, of it in the push $CPU_PUSH}" >&2
        done
    done
    echo
    echo "sustained: $LONG_N x 10 KB per run, ingest archiving while mail comes (load now $(cut -d' ' -f1-3 /proc/loadavg)):"
    for s in none null-unix custos-unix; do
        v=$(v_of "$s")
        runs=$(eval "echo \$R_$v")
        eval "M_$v=$(median $runs)"
        printf "  %-18s %8s %6s  %s\n" "$s" "$(eval "echo \$M_$v")" "" "$runs"
    done
    python3 -c "print('  unix, sustained: custos/null %.2fx, custos/no-milter %.2fx, null/no-milter %.2fx' % ($M_custos_unix/$M_null_unix, $M_custos_unix/$M_none, $M_null_unix/$M_none))"
    [ -z "$IP" ] || echo "  ingest CPU ms/msg of custos-unix in the push / in all, per run:$IP"
fi

# ---- resident memory: 10 KB vs 10 MB messages -------------------------------
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
memrun() { # SIZE COUNT: HWM = peak RSS kB of a fresh custos-milter after COUNT x SIZE
    kill "$PID_custos_unix"
    wait "$PID_custos_unix" 2>/dev/null || true
    start_custos custos-unix
    sleep 1
    in_group smtp /usr/sbin/smtp-source -s "$SESS" -l "$1" -m "$2" -f bench@corp.example \
        -t sink@customer.example "127.0.0.1:$PORT_custos_unix"
    HWM=$(hwm "$PID_custos_unix")
}
if [ "$MEM" = 1 ] && has custos-unix; then
    drain
    memrun 10240 "$N"
    small=$HWM
    drain
    memrun 10485760 "$BIG_N"
    big=$HWM
    drain
    echo
    echo "resident memory of custos-milter (peak, VmHWM), $SESS sessions:"
    python3 -c "print('  %d x 10 KB: %d kB; %d x 10 MB: %d kB; ratio %.2f (target <= 1.20)' % ($N, $small, $BIG_N, $big, $big / $small))"
fi
archived=$("$BUILD/custos-archive" -c "$T/custos-unix.conf" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("deliveries"))')
echo "archive: $archived deliveries ingested; $(ls "$T/spool/failed" | wc -l) spool entries failed"
