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
cat > "$demo/custos.conf" <<CONF
[archive]
dir = $demo/archive
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
echo
echo "demo archive: $demo/archive  (CUSTOS_CONF=$demo/custos.conf $build/custos-archive search ...)"
