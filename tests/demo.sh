#!/bin/sh
# make demo: an archive under ./var filled from real sample mail (see
# tests/data/README), then searched, Chinese included. Everything stays in
# ./var/demo; run it again and it starts afresh.
set -eu
build=${1:-build}
corpus=${2:-var/corpus}
top=$(pwd)
demo=$top/var/demo
bin=$top/$build/custos-archive

rm -rf "$demo"
mkdir -p "$demo"
# The key that signs the archive's checkpoints (custos.conf(5), [chain]).
( umask 077 && openssl genpkey -algorithm ed25519 -out "$demo/chain.key" 2>/dev/null )
openssl pkey -in "$demo/chain.key" -pubout -out "$demo/chain.pub"
cat > "$demo/custos.conf" <<CONF
[archive]
dir = $demo/archive
[chain]
sign_key = $demo/chain.key
verify_key = $demo/chain.pub
[directory]
webmail_domains = $top/conf/webmail-domains.txt
[retention]
default = 7y
rule.newsletters = 30d from:news@vendor.example
CONF
export CUSTOS_CONF="$demo/custos.conf"

run() {
    printf '\n$ custos-archive %s\n' "$*"
    "$bin" "$@"
}

run init
# Real mail nobody here wrote, from Debian packages, and the constructed
# Chinese cases (GB2312-labelled GBK, GB18030, Big5, split encoded-words).
# Exit status 1 means some input was skipped (reported above): fine here.
run import "$corpus" "$top/tests/data/cjk" || [ $? -eq 1 ]
run stats
run search --limit 5 '*'
run search --count '*'
run search 客户
run search --json 'subject:客户 OR attachment:客户名单'
run search --limit 5 'has:attachment -from:example.com'
id=$("$bin" search --json --limit 1 客户 | sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
if [ -n "$id" ]; then
    run show "$id"
fi

# Governance. A small sales mailbox (constructed: tests/data/make-sales.py)
# of the sample directory's staff, then who is who from CSV files.
python3 "$top/tests/data/make-sales.py" "$demo/sales.mbox"
run import "$demo/sales.mbox"
run directory import employees "$top/conf/employees.sample.csv"
run directory import customers "$top/conf/customers.sample.csv"
run directory import accounts "$top/conf/accounts.sample.csv"
run directory show wang.wei@corp.example
# Customers the archive knows and the directory does not (yet).
run directory learn
run directory learn --apply
run directory list customers
run search 'customer:mingyuan.example'
run search 'department:sales has:attachment'
# A legal hold, and what retention would purge: nothing yet, as a period
# counts from when a message was archived (a minute ago), never from its
# Date header; a dry run changes nothing anyway.
run hold add acme-dispute 'customer:acme.example' --note 'Order 4711 dispute'
run hold list
run retention --dry-run
# Evidence for a lawyer: the messages, their hashes, their place in the
# chain and signed checkpoint, checked without the archive.
rm -f "$demo/evidence.tar"
run export --format tar -o "$demo/evidence.tar" 'employee:wang.wei@corp.example'
# (a third party runs it without custos.conf: it needs only the file)
printf '\n$ custos-archive verify-export %s\n' "$demo/evidence.tar"
env -u CUSTOS_CONF "$bin" verify-export "$demo/evidence.tar"
mkdir -p "$demo/evidence"
tar -xf "$demo/evidence.tar" -C "$demo/evidence"
printf '\n$ (cd evidence && sha256sum -c SHA256SUMS)\n'
(cd "$demo/evidence" && sha256sum --quiet -c SHA256SUMS && echo "SHA256SUMS: all OK")
# Integrity: every object re-hashed, the hash chain recomputed, the signed
# checkpoints checked, index.db checked against the segments.
run checkpoint
run verify
# Everything read or changed above, by whom (sealed into the chain).
run audit
echo
echo "demo archive: $demo/archive  (CUSTOS_CONF=$demo/custos.conf $build/custos-archive search ...)"
