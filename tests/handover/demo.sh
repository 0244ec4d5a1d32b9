#!/bin/sh
# tests/handover/demo.sh [BUILD] - a handover, for the end of `make demo`
#
# The archive of the sample sales mailbox (tests/data/make-sales.py) and
# the sample directory, and a Dovecot mail store built from the same mail
# (tests/data/handover/make-leaver.py): wang.wei leaves, with folders in
# Chinese (客户/明远), flags, a name with '&' and ',', and mail he deleted
# before going that the archive still has; li.na takes over. He also
# forwards mail to his 163.com address (an alias and a Sieve redirect).
# custos-handover plans, applies and reports; then a private Dovecot on
# 127.0.0.1 (conf/dovecot-handover.conf included, as an admin would) and
# curl's imap:// show, logged in as li.na, the Handover folders with their
# counts and what was recovered. Needs root (Dovecot runs as the mail
# users). Nothing leaves 127.0.0.1.
set -eu

BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "demo: must run as root (Dovecot)" >&2; exit 1; }

T=$(mktemp -d /tmp/custos-demo-handover.XXXXXX)
chmod 0711 "$T"                 # Dovecot's processes walk through it as the users
DOVECOT=""
cleanup() {
    if [ -n "$DOVECOT" ]; then
        kill "$DOVECOT" 2>/dev/null || true
        wait "$DOVECOT" 2>/dev/null || true
        i=0; while kill -0 -- "-$DOVECOT" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        kill -9 -- "-$DOVECOT" 2>/dev/null || true
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$T/etc"
cat > "$T/custos.conf" <<CONF
[archive]
dir = $T/archive
[directory]
webmail_domains = $SRC/conf/webmail-domains.txt
[handover]
maildir = $T/vmail/%d/%n/Maildir
alias_maps = $T/etc/aliases
virtual_maps = $T/etc/virtual
forward_file = $T/home/%n/.forward
sieve = $T/vmail/%d/%n/sieve
postfix_config = $T/postfix
CONF
# Postfix's configuration for postmap/postalias -c (its defaults will do)
mkdir -p "$T/postfix" && : > "$T/postfix/main.cf"
A() { "$BUILD/custos-archive" -c "$T/custos.conf" "$@"; }
H() { printf '\n$ custos-handover %s\n' "$*"; "$BUILD/custos-handover" -c "$T/custos.conf" "$@"; }

echo "== the archive and the directory"
A init > /dev/null
python3 "$SRC/tests/data/make-sales.py" "$T/sales.mbox"
A import "$T/sales.mbox" | tail -n 1
A directory import employees "$SRC/conf/employees.sample.csv" > /dev/null
A directory import customers "$SRC/conf/customers.sample.csv" > /dev/null
A directory import customers "$SRC/tests/data/handover/customers.csv" > /dev/null

echo
echo "== the mail store: the leaver's Maildir (wang.wei, uid 5001) and the successor's (li.na, uid 5000)"
python3 "$SRC/tests/data/handover/make-leaver.py" "$T/sales.mbox" "$T/vmail" |
    while IFS="$(printf '\t')" read -r f n; do printf '    %-22s %s files\n' "${f:-INBOX}" "$n"; done
printf 'postmaster: root\nwang.wei: wang.wei@corp.example, wangwei@163.com\n' > "$T/etc/aliases"
: > "$T/etc/virtual"
mkdir -p "$T/vmail/corp.example/wang.wei/sieve"
printf 'if header :contains "subject" "order" {\n  redirect "wangwei@163.com";\n}\n' \
    > "$T/vmail/corp.example/wang.wei/sieve/main.sieve"

H forwards wang.wei@corp.example
# He left at the end of March 2026, when the sample mail ends (the report's
# incidents are those of the 90 days before).
H plan --from wang.wei@corp.example --to li.na@corp.example --effective 2026-04-01 \
    --postfix-map "$T/etc/handover-virtual" | tee "$T/plan.out"
id=$(sed -n 's/^plan \(.*\) saved in .*/\1/p' "$T/plan.out")
[ -n "$id" ] || { echo "demo: no plan id in plan's output" >&2; exit 1; }
H apply "$id"
H report "$id"
printf '\n$ cat %s\n' "$T/etc/aliases"
cat "$T/etc/aliases"
printf '\n$ postmap -q wang.wei@corp.example hash:%s   (the map apply wrote and built)\n' \
    "$T/etc/handover-virtual"
postmap -c "$T/postfix" -q wang.wei@corp.example "hash:$T/etc/handover-virtual"

echo
echo "== what li.na sees over IMAP (a private Dovecot on 127.0.0.1)"
PORT=$(port)
mkdir -p "$T/dovecot/run" "$T/dovecot/state"
printf 'li.na@corp.example:{PLAIN}successor:5000:5000::::\nwang.wei@corp.example:{PLAIN}leaver:5001:5001::::\n' \
    > "$T/dovecot/passwd"
cat > "$T/dovecot/dovecot.conf" <<CONF
base_dir = $T/dovecot/run
state_dir = $T/dovecot/state
log_path = $T/dovecot/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 100
mail_location = maildir:$T/vmail/%d/%n/Maildir
!include $SRC/conf/dovecot-handover.conf
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $T/dovecot/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $T/dovecot/passwd
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
CONF
setsid /usr/sbin/dovecot -F -c "$T/dovecot/dovecot.conf" < /dev/null > "$T/dovecot/stdout" 2>&1 &
DOVECOT=$!
i=0; until python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT)).close()" 2>/dev/null; do
    i=$((i+1)); [ $i -lt 100 ] || { echo "demo: Dovecot did not start" >&2; cat "$T/dovecot/dovecot.log" >&2; exit 1; }
    sleep 0.1
done

imap() { # MAILBOX COMMAND: curl as li.na (MAILBOX "" or a folder, selected first)
    curl --silent --show-error --max-time 20 --user li.na@corp.example:successor \
        "imap://127.0.0.1:$PORT/$(python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$1")" \
        --request "$2" | tr -d '\r'
}
# Modified UTF-7 (RFC 3501) folder names as people read them.
mutf7() {
    python3 -c '
import base64, re, sys
def dec(m):
    s = m.group(1)
    if not s:
        return "&"
    b = base64.b64decode(s.replace(",", "/") + "=" * (-len(s) % 4))
    return b.decode("utf-16-be")
print(re.sub(r"&([A-Za-z0-9+,]*)-", dec, sys.argv[1]))' "$1"
}
printf '\n$ curl imap://li.na@127.0.0.1:%s/ -X '\''LIST "" "*"'\''\n' "$PORT"
imap "" 'LIST "" "*"' | tee "$T/list"
printf '\n    messages  unseen  folder (STATUS)\n'
grep -v Noselect "$T/list" | sed -n 's/^\* LIST ([^)]*) "\/" //p' | sed 's/^"\(.*\)"$/\1/' | sort |
while read -r box; do
    st=$(imap "" "STATUS \"$box\" (MESSAGES UNSEEN)")
    m=$(echo "$st" | sed -n 's/.*MESSAGES \([0-9]*\).*/\1/p')
    u=$(echo "$st" | sed -n 's/.*UNSEEN \([0-9]*\).*/\1/p')
    printf '    %8s  %6s  %s\n' "$m" "$u" "$(mutf7 "$box")"
done
subjects() { # MAILBOX: each message's date, flags and Subject (RFC 2047 decoded)
    imap "$1" 'FETCH 1:* (UID FLAGS INTERNALDATE)' | sed -n 's/^\* [0-9]* FETCH (//p' |
    while read -r line; do
        uid=$(echo "$line" | sed -n 's/.*UID \([0-9]*\).*/\1/p')
        date=$(echo "$line" | sed -n 's/.*INTERNALDATE "\([^"]*\)".*/\1/p')
        flags=$(echo "$line" | sed -n 's/.*FLAGS (\([^)]*\)).*/\1/p' | sed 's/\\Recent//; s/  */ /g; s/ *$//')
        subj=$(curl --silent --show-error --max-time 20 --user li.na@corp.example:successor \
            "imap://127.0.0.1:$PORT/$(python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$1")/;UID=$uid/;SECTION=HEADER.FIELDS%20(SUBJECT)" |
            python3 -c '
import sys, email
m = email.message_from_binary_file(sys.stdin.buffer)
print(str(email.header.make_header(email.header.decode_header(m.get("Subject", "")))))')
        printf '    %s  %-20s  %s\n' "$date" "${flags:-(unread)}" "$subj"
    done
}
box='Handover/wang.wei/&W6JiNw-/&Zg6P3A-'
printf '\n$ curl imap://li.na@127.0.0.1:%s/ -X '\''EXAMINE "%s"'\''  (客户/明远)\n' "$PORT" "$box"
imap "" "EXAMINE \"$box\"" | sed 's/^/    /'
echo "    -- its messages: received date (the leaver's), flags, subject"
subjects "$box"
box='Handover/wang.wei/Recovered'
printf '\n-- %s: what wang.wei had deleted, back from the archive\n' "$box"
subjects "$box"
box='Handover/wang.wei/INBOX'
printf '\n-- %s\n' "$box"
subjects "$box"
printf '\n$ ls %s\n' "$T/vmail/corp.example/li.na/Maildir"
ls "$T/vmail/corp.example/li.na/Maildir" | sed 's/^/    /'
echo
echo "demo handover: plan $id; KEEP=1 keeps $T"
