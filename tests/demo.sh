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
# Integrity: every object re-hashed, the hash chain recomputed, the signed
# checkpoints checked, index.db checked against the segments.
run checkpoint
run verify
echo
echo "demo archive: $demo/archive  (CUSTOS_CONF=$demo/custos.conf $build/custos-archive search ...)"
