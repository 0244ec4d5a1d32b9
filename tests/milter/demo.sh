#!/bin/sh
# tests/milter/demo.sh [BUILD] - the gateway on loopback, for `make demo`
#
# A private Postfix on 127.0.0.1 with custos-milter in front of an
# smtp-sink, custos-archive ingest --follow beside it, the sample directory
# (conf/*.sample.csv) and [archive] scope = departments. Sample sales mail
# goes through it: a quotation in Chinese (GB2312), a customer list sent by
# an employee in her notice period to her own 163.com address, mail from a
# departed employee's mailbox (flagged: departed-sender, refused with
# 550 5.7.1 by [policy], still archived as the attempt), a newsletter to
# management (not sales mail: not archived). Then what the milter said,
# what arrived (with X-Custos-Archive) and what the archive finds.
# Needs root (Postfix's master) and `make`. Nothing leaves 127.0.0.1.
set -eu

BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "demo: must run as root (Postfix's master)" >&2; exit 1; }

T=$(mktemp -d /tmp/custos-demo-milter.XXXXXX)
chmod 0755 "$T"
PIDS=""
MASTER=""
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
    sleep 0.3
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# the spool's tmp/, new/, failed/, journal/ made here: else ingest --follow
# (root) may make them first, and the milter (nobody) cannot write there
mkdir -p "$T/spool/tmp" "$T/spool/new" "$T/spool/failed" "$T/spool/journal" "$T/sink" \
    "$T/conf" "$T/queue" "$T/data"
chown -R nobody:postfix "$T/spool"
chmod 0770 "$T/spool" "$T/spool/tmp" "$T/spool/new" "$T/spool/failed" "$T/spool/journal"
chown postfix "$T/sink" "$T/data"
cat > "$T/custos.conf" <<EOF
[archive]
dir = $T/archive
group = postfix
scope = departments
departments = sales
[directory]
webmail_domains = $SRC/conf/webmail-domains.txt
[spool]
dir = $T/spool
[milter]
socket = unix:$T/milter.sock
user = nobody
group = postfix
EOF
A() { "$BUILD/custos-archive" -c "$T/custos.conf" "$@"; }
A init > /dev/null 2>&1
A directory import employees "$SRC/conf/employees.sample.csv" > /dev/null 2>&1
A directory import customers "$SRC/conf/customers.sample.csv" > /dev/null 2>&1

"$BUILD/custos-milter" -f -c "$T/custos.conf" > "$T/milter.log" 2>&1 &
PIDS="$PIDS $!"
nice -n 19 "$BUILD/custos-archive" -c "$T/custos.conf" ingest --follow > "$T/ingest.log" 2>&1 &
PIDS="$PIDS $!"
SINK=$(port); SMTPD=$(port)
/usr/sbin/smtp-sink -u postfix -d "$T/sink/%M." -c "127.0.0.1:$SINK" 100 > "$T/sink.log" 2>&1 &
PIDS="$PIDS $!"
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
myhostname = gateway.corp.example
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK
maillog_file = $T/maillog
maillog_file_prefixes = /var, /dev/stdout, /tmp
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_milters = unix:$T/milter.sock
non_smtpd_milters = \$smtpd_milters
milter_default_action = tempfail
milter_protocol = 6
EOF
cat > "$T/conf/master.cf" <<EOF
127.0.0.1:$SMTPD inet n - n - - smtpd
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
setsid /usr/lib/postfix/sbin/master -d -c "$T/conf" < /dev/null > "$T/master.log" 2>&1 &
MASTER=$!
i=0; until [ -S "$T/milter.sock" ] && python3 -c "import socket; socket.create_connection(('127.0.0.1', $SMTPD)).close()" 2>/dev/null; do
    i=$((i+1)); [ $i -lt 100 ] || { echo "demo: Postfix or custos-milter did not start" >&2; cat "$T/milter.log" >&2; exit 1; }
    sleep 0.1
done

b64() { printf '%s' "$1" | iconv -f UTF-8 -t "$2" | base64 -w0; }
send() { # FROM TO FILE
    swaks --server "127.0.0.1:$SMTPD" --helo client.corp.example --from "$1" --to "$2" \
        --data "@$3" | grep -E '^<[-*]+ +(250 .*queued|5[0-9][0-9][ -])' | sed 's/^<[-*]* */    /'
}
msg() { # FILE FROM TO SUBJECT(UTF-8) CHARSET BODY(UTF-8)
    { printf 'From: %s\r\nTo: %s\r\nSubject: =?%s?B?%s?=\r\nMIME-Version: 1.0\r\n' \
          "$2" "$3" "$5" "$(b64 "$4" "$5")"
      printf 'Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' "$5"
      printf '%s\r\n' "$6" | iconv -f UTF-8 -t "$5"; } > "$1"
}
echo "== sample mail through Postfix and custos-milter"
msg "$T/m1" li.na@corp.example purchasing@xingchen.example "报价单 第三季度" GB2312 \
    "您好，附件是第三季度的报价单，请查收。李娜"
msg "$T/m2" wang.wei@corp.example wangwei@163.com "客户名单" UTF-8 \
    "北京星辰科技有限公司, purchasing@xingchen.example, +86 10 8888 0000; Acme Trading, +1 (415) 555-0100"
msg "$T/m3" chen.jie@corp.example purchasing@xingchen.example "Re: order 4711" UTF-8 \
    "This is Chen Jie, still reachable here."
msg "$T/m4" news@vendor.example zhao.gang@corp.example "Vendor newsletter" UTF-8 \
    "Our autumn offers."
send li.na@corp.example purchasing@xingchen.example "$T/m1"
send wang.wei@corp.example wangwei@163.com "$T/m2"
send chen.jie@corp.example purchasing@xingchen.example "$T/m3"
send news@vendor.example zhao.gang@corp.example "$T/m4"

i=0; while [ "$(ls "$T/sink" | wc -l)" -lt 3 ] || [ "$(ls "$T/spool/new" | wc -l)" -gt 0 ] || \
          [ "$(A stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deliveries"])')" -lt 3 ]; do
    i=$((i+1)); [ $i -lt 300 ] || { echo "demo: mail did not arrive or was not ingested" >&2; break; }
    sleep 0.1
done
echo
echo "== what custos-milter said"
sed -n 's/^custos-milter: //p' "$T/milter.log" | grep -v '^debug' | cut -c1-200
echo
echo "== what arrived (X-Custos-Archive)"
for f in "$T"/sink/*; do
    subj=$(sed -n 's/^Subject: //p' "$f" | head -1 | tr -d '\r')
    subj=$(python3 -c 'import sys, email.header as h; print(str(h.make_header(h.decode_header(sys.argv[1]))))' "$subj")
    printf '    %-20s %s\n' "$subj" \
        "$(sed -n 's/^X-Custos-Archive: /X-Custos-Archive: /p' "$f" | head -1)"
done
echo
echo "== what the archive finds"
for q in '*' 'from:chen.jie@corp.example' '报价单' 'to:wangwei@163.com' 'from:news@vendor.example'; do
    echo "-- custos-archive search '$q'"
    A search "$q" | sed 's/^/    /'
done
echo
echo "== incidents: each finding with what custos-milter did about it"
A incidents | sed 's/^/    /'
