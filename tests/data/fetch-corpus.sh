#!/bin/sh
# fetch-corpus.sh DIR - real mail that nobody in custos wrote, from Debian
# packages, copied byte-exact into DIR/<package>/... (see tests/data/README).
#
# Packages are fetched with `apt-get download` (no install) into a cache
# (DIR/.cache, or $CORPUS_CACHE) and unpacked with `dpkg -x`; `apt-get
# update` is run only when a download fails. Idempotent: each package's
# directory is rebuilt from the cache; DIR/.done is touched at the end.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
cache=${CORPUS_CACHE:-$dir/.cache}
mkdir -p "$dir" "$cache/x"
dir=$(cd "$dir" && pwd)
cache=$(cd "$cache" && pwd)
updated=no

# deb PKG: print the path of PKG's .deb in the cache, downloading it.
deb() {
    f=$(ls "$cache/$1"_*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$f" ]; then
        if ! (cd "$cache" && apt-get download "$1" >/dev/null 2>&1); then
            if [ "$updated" = no ]; then
                apt-get update -qq >&2 || true
                updated=yes
            fi
            (cd "$cache" && apt-get download "$1" >&2) || {
                echo "fetch-corpus: cannot download $1" >&2
                return 1
            }
        fi
        f=$(ls "$cache/$1"_*.deb | head -n 1)
    fi
    echo "$f"
}

# unpack PKG: unpack into $cache/x/PKG once; print that directory.
unpack() {
    if [ ! -d "$cache/x/$1" ]; then
        f=$(deb "$1") || return 1
        rm -rf "$cache/x/$1.tmp"
        dpkg -x "$f" "$cache/x/$1.tmp"
        mv "$cache/x/$1.tmp" "$cache/x/$1"
    fi
    echo "$cache/x/$1"
}

# take PKG SRCDIR DEST PATTERN...: copy files under SRCDIR (relative to the
# package root) whose names match a PATTERN into DIR/DEST, keeping subdirs.
take() {
    pkg=$1 src=$2 dest=$3
    shift 3
    root=$(unpack "$pkg") || exit 1
    [ -d "$root/$src" ] || { echo "fetch-corpus: $pkg has no $src" >&2; exit 1; }
    for pat in "$@"; do
        (cd "$root/$src" && find . -type f -name "$pat") | while read -r f; do
            mkdir -p "$dir/$dest/$(dirname "$f")"
            cp "$root/$src/$f" "$dir/$dest/$f"
        done
    done
}

# CPython's email tests: the testsuite package of whichever Python is there.
pytest_pkg=
for v in 3.13 3.12 3.11; do
    if apt-cache show "libpython$v-testsuite" >/dev/null 2>&1; then
        pytest_pkg=libpython$v-testsuite
        break
    fi
done
[ -n "$pytest_pkg" ] || { echo "fetch-corpus: no libpython3.x-testsuite" >&2; exit 1; }
pyver=${pytest_pkg#libpython}
pyver=${pyver%-testsuite}

for d in "$pytest_pkg" python3-flufl.bounce golang-github-jhillyerd-enmime-dev \
         python3-django-hyperkitty mailman3 spamassassin gir1.2-gmime-3.0; do
    rm -rf "${dir:?}/$d"
done

take "$pytest_pkg" "usr/lib/python$pyver/test/test_email/data" "$pytest_pkg" 'msg_*.txt'
take python3-flufl.bounce usr/lib/python3/dist-packages/flufl/bounce/tests/data \
     python3-flufl.bounce '*.txt'
for sub in mail low-quality parts; do
    take golang-github-jhillyerd-enmime-dev \
         "usr/share/gocode/src/github.com/jhillyerd/enmime/testdata/$sub" \
         "golang-github-jhillyerd-enmime-dev/$sub" '*.raw'
done
take python3-django-hyperkitty usr/lib/python3/dist-packages/hyperkitty/tests/testdata \
     python3-django-hyperkitty '*.txt'
for sub in utilities handlers runners email; do
    take mailman3 "usr/lib/python3/dist-packages/mailman/$sub/tests/data" \
         "mailman3/$sub" '*.eml'
done
take spamassassin usr/share/doc/spamassassin/examples spamassassin 'sample-*.txt'
take gir1.2-gmime-3.0 usr/share/doc/gir1.2-gmime-3.0/examples gir1.2-gmime-3.0 '*.eml'

n=$(find "$dir" -path "$cache" -prune -o -type f ! -name .done -print | wc -l)
echo "fetch-corpus: $n messages in $dir"
touch "$dir/.done"
