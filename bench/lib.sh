# bench/lib.sh - shared by the benchmark scripts (sourced, not run).
# Everything lives under var/bench; nothing touches the network.
top=$(pwd)
bench=$top/var/bench
maildir=$bench/maildir
build=${BUILD:-build}
case $build in /*) bin=$build/custos-archive ;; *) bin=$top/$build/custos-archive ;; esac

# Nanoseconds since the epoch.
now_ns() { date +%s%N; }

# Seconds (3 decimals) between two now_ns values.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# The median of the numbers on standard input, one per line.
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# a / b with two decimals, or "n/a".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "") printf "%.2f", a / b; else print "n/a" }'; }

have() { command -v "$1" >/dev/null 2>&1; }

die() { echo "bench: $*" >&2; exit 1; }

# Messages in the benchmark Maildir.
maildir_count() { find "$maildir/cur" "$maildir/new" -type f | wc -l; }

# Raw bytes of the benchmark Maildir (file contents only).
maildir_bytes() {
    find "$maildir/cur" "$maildir/new" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }'
}

# custos: a configuration with the archive in var/bench/custos.
custos_setup() {
    mkdir -p "$bench"
    cat > "$bench/custos.conf" <<CONF
[archive]
dir = $bench/custos
[log]
level = warning
CONF
    CUSTOS_CONF=$bench/custos.conf
    export CUSTOS_CONF
}

# notmuch: a configuration with the database in var/bench/notmuch and the
# Maildir as mail root (database outside the Maildir, so no tool sees it).
notmuch_setup() {
    mkdir -p "$bench"
    cat > "$bench/notmuch-config" <<CONF
[database]
path=$bench/notmuch
mail_root=$maildir
[user]
name=Bench
primary_email=bench@example.com
[new]
tags=unread;inbox;
ignore=
[search]
exclude_tags=
[maildir]
synchronize_flags=true
CONF
    NOTMUCH_CONFIG=$bench/notmuch-config
    export NOTMUCH_CONFIG
}

mu_home=$bench/mu
