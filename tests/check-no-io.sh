#!/bin/sh
# check-no-io.sh - role logic does no I/O (DESIGN.md, "The one idea").
#
# Scans every .c and .h file under proto/ agent/ mp/ dp/ site/ cmg/ (folders
# that do not exist yet are skipped) and fails, listing file:line, when one
#   - includes an I/O header: sys/socket.h, netinet/*, arpa/inet.h, netdb.h,
#     event2/*, curl/*, gio/gio.h, poll.h, sys/epoll.h, sys/select.h,
#     unistd.h, fcntl.h;
#   - includes sqlite3.h outside proto/store.c and site/ (everyone else goes
#     through the store module);
#   - opens files: fopen( freopen( fdopen( popen( open( openat( creat(
#     g_fopen( g_open( g_freopen( or any g_file_* function;
#   - reads the clock or sleeps: time( gettimeofday( clock_gettime(
#     clock( timespec_get( ftime( g_get_real_time( g_get_monotonic_time(
#     g_get_current_time( g_date_time_new_now*( g_timer_new( sleep(
#     usleep( nanosleep( g_usleep(;
#   - draws from a global or unseeded random generator: rand( random(
#     srand( srandom( rand_r( drand48( lrand48( mrand48( erand48(
#     arc4random*( getrandom( g_random_*( g_rand_new(.
# Comments and string literals are not code and are not scanned, so
# "at the same time (roughly)" in a comment is fine.  Time is passed in as
# a CmTime, randomness as a CmRng; the store module reaches files only
# through SQLite.
#
# Exemption: a line that ends with a comment
#     /* io-ok: <reason> */
# is not checked.  The reason is required (a bare "io-ok:" exempts
# nothing) and should say why the call cannot be passed in, so that a
# reviewer can judge it.
#
# Usage: check-no-io.sh              self-test, then scan $top_srcdir
#        check-no-io.sh --self-test  only prove the scanner detects violations
#        check-no-io.sh --scan DIR   only scan DIR (no self-test)
# $top_srcdir defaults to the folder above this script.

ROLE_DIRS="proto agent mp dp site cmg"

# The scanner.  POSIX awk; bracket expressions spelled out, not [:alnum:],
# for old mawk.  Prints "path:line: what: code" per violation.
# shellcheck disable=SC2016 # awk's $0, not the shell's
AWK_SCAN='
function strip(line,    out, i, n, c, d, q) {
    # Removes comments and string/char literals; in_comment carries a
    # /* ... */ comment across lines.
    out = ""
    n = length(line)
    i = 1
    while (i <= n) {
        c = substr(line, i, 1)
        d = substr(line, i, 2)
        if (in_comment) {
            if (d == "*/") { in_comment = 0; i += 2; out = out " " } else i++
            continue
        }
        if (d == "/*") { in_comment = 1; i += 2; continue }
        if (d == "//") break
        if (c == "\"" || c == "\047") {
            q = c
            i++
            while (i <= n) {
                c = substr(line, i, 1)
                if (c == "\\") { i += 2; continue }
                i++
                if (c == q) break
            }
            out = out q q
            continue
        }
        out = out c
        i++
    }
    return out
}
function report(what,    text) {
    text = $0
    sub(/^[ \t]+/, "", text)
    if (length(text) > 100) text = substr(text, 1, 100) "..."
    printf "%s:%d: %s: %s\n", rel, FNR, what, text
}
FNR == 1 {
    rel = FILENAME
    if (index(rel, top) == 1) rel = substr(rel, length(top) + 1)
    in_comment = 0
}
{
    started_in_comment = in_comment
    exempt = ($0 ~ /\/\*[ \t]*io-ok:[ \t]*[^ \t*][^*]*\*\/[ \t]*$/)
    code = strip($0)
    if (exempt) next

    if (!started_in_comment && $0 ~ /^[ \t]*#[ \t]*include[ \t]*[<"]/) {
        hdr = $0
        sub(/^[ \t]*#[ \t]*include[ \t]*[<"]/, "", hdr)
        sub(/[>"].*$/, "", hdr)
        if (hdr ~ /^(sys\/socket\.h|netinet\/.*|arpa\/inet\.h|netdb\.h|event2\/.*|curl\/.*|gio\/gio\.h|poll\.h|sys\/epoll\.h|sys\/select\.h|unistd\.h|fcntl\.h)$/) {
            report("I/O header <" hdr ">")
            next
        }
        if (hdr == "sqlite3.h" && rel != "proto/store.c" && rel !~ /^site\//) {
            report("sqlite3.h outside proto/store.c and site/")
            next
        }
        next
    }

    # Calls: the name must not continue an identifier or follow "." or "->"
    # (a member called "open" is not open(2)).
    pre = "(^|[^A-Za-z0-9_.>]|[^-]>)"
    post = "[ \t]*\\("
    if (code ~ (pre "(fopen|freopen|fdopen|popen|open|openat|creat|g_fopen|g_open|g_freopen)" post) ||
        code ~ (pre "g_file_[A-Za-z0-9_]*")) {
        report("opens a file")
    } else if (code ~ (pre "(time|gettimeofday|clock_gettime|clock|timespec_get|ftime|g_get_real_time|g_get_monotonic_time|g_get_current_time|g_date_time_new_now[A-Za-z0-9_]*|g_timer_new)" post)) {
        report("reads the clock (time is passed in as a CmTime)")
    } else if (code ~ (pre "(sleep|usleep|nanosleep|g_usleep)" post)) {
        report("sleeps")
    } else if (code ~ (pre "(rand|random|srand|srandom|rand_r|drand48|lrand48|mrand48|erand48|arc4random[A-Za-z0-9_]*|getrandom|g_random_[A-Za-z0-9_]*|g_rand_new)" post)) {
        report("global random generator (randomness is passed in as a CmRng)")
    }
}
'

# scan ROOT: prints violations, then "<files> <violations>" on fd 3.
scan() {
    _root=$1
    _files=0
    _list=""
    for _d in $ROLE_DIRS; do
        [ -d "$_root/$_d" ] || continue
        _found=$(find "$_root/$_d" -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
        [ -n "$_found" ] || continue
        _list="$_list
$_found"
    done
    _out=""
    if [ -n "$_list" ]; then
        _files=$(printf '%s\n' "$_list" | grep -c .)
        # File names with newlines are not supported; spaces are.
        _out=$(printf '%s\n' "$_list" | grep . | {
            _rc=0
            while IFS= read -r _f; do
                awk -v top="$_root/" "$AWK_SCAN" "$_f" || _rc=1
            done
            exit $_rc
        }) || { echo "no-io: the scanner failed" >&2; return 2; }
    fi
    if [ -n "$_out" ]; then
        printf '%s\n' "$_out"
        _bad=$(printf '%s\n' "$_out" | grep -c .)
    else
        _bad=0
    fi
    echo "$_files $_bad" >&3
    return 0
}

# The scanner proves it can fail: a tree with known violations, each of
# which must be reported at its line, and known clean lines that must not.
self_test() {
    _tmp=$(mktemp -d "${TMPDIR:-/tmp}/no-io-selftest.XXXXXX") || return 1
    mkdir -p "$_tmp/proto" "$_tmp/agent" "$_tmp/site/db" "$_tmp/net"
    cat >"$_tmp/agent/bad.c" <<'EOF'
#include <unistd.h>
#include <sys/socket.h>
#  include <netinet/in.h>
#include "sqlite3.h"
static void f(void) {
    FILE *fp = fopen("/etc/passwd", "r");
    int fd = open("x", 0);
    long t = time(NULL);
    g_get_real_time();
    sleep(1);
    int r = rand();
    g_file_get_contents("x", NULL, NULL, NULL);
    usleep (5);
    srand(3); /* io-ok: */
}
EOF
    cat >"$_tmp/proto/clean.c" <<'EOF'
#include <string.h>
#include "cmproto.h"
/* At the same time (roughly) we open( nothing:
 * sleep(1) in a comment, rand() too. */
static const char *msg = "time(NULL) and fopen( in a string";
static char q = '(';
static void g(CmClock *clock, struct ops *ops) {
    ops->open(ops);
    ops.open(ops);
    cm_store_time(1);
    sqlite3_open_v2(0, 0, 0, 0);
    RAND_bytes(buf, 4);
    long t = time(NULL); /* io-ok: self-test of the exemption */
}
EOF
    cat >"$_tmp/proto/store.c" <<'EOF'
#include <sqlite3.h>
EOF
    cat >"$_tmp/site/db/schema.c" <<'EOF'
#include <sqlite3.h>
EOF
    cat >"$_tmp/net/http.c" <<'EOF'
#include <sys/socket.h>
EOF
    # agent/bad.c lines that must be reported; line 14 has an io-ok
    # without a reason, which exempts nothing.
    _expect="1 2 3 4 6 7 8 9 10 11 12 13 14"
    _st=0
    _res=$(scan "$_tmp" 3>"$_tmp/counts") || _st=1
    for _n in $_expect; do
        if ! printf '%s\n' "$_res" | grep -q "^agent/bad\.c:$_n: "; then
            echo "no-io self-test: agent/bad.c:$_n was not detected" >&2
            _st=1
        fi
    done
    if printf '%s\n' "$_res" | grep -q -v -e '^agent/bad\.c:' -e '^$'; then
        echo "no-io self-test: clean lines were reported:" >&2
        printf '%s\n' "$_res" | grep -v -e '^agent/bad\.c:' >&2
        _st=1
    fi
    # shellcheck disable=SC2086 # split the list into words to count them
    set -- $_expect
    if [ "$(cat "$_tmp/counts")" != "4 $#" ]; then
        echo "no-io self-test: expected 4 files and $# violations, got $(cat "$_tmp/counts")" >&2
        _st=1
    fi
    rm -rf "$_tmp"
    return $_st
}

run_scan() {
    _root=$1
    _note=${2:-}
    _cnt=$(mktemp "${TMPDIR:-/tmp}/no-io-count.XXXXXX") || exit 2
    _res=$(scan "$_root" 3>"$_cnt") || { rm -f "$_cnt"; exit 2; }
    # shellcheck disable=SC2046 # "<files> <violations>"
    set -- $(cat "$_cnt")
    rm -f "$_cnt"
    if [ "$2" -ne 0 ]; then
        printf '%s\n' "$_res"
        echo "no-io: $2 violation(s) in $1 files; pass time and randomness in, keep I/O in net/ or sim/, or mark a justified line /* io-ok: <reason> */"
        exit 1
    fi
    echo "no-io: $1 files clean$_note"
}

top=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}

case ${1:-} in
--self-test)
    self_test || exit 1
    echo "no-io: self-test passed"
    ;;
--scan)
    [ -n "${2:-}" ] || { echo "usage: $0 --scan DIR" >&2; exit 2; }
    run_scan "$2"
    ;;
"")
    if ! self_test; then
        echo "no-io: self-test failed; the scanner cannot be trusted" >&2
        exit 1
    fi
    run_scan "$top" " (self-test passed)"
    ;;
*)
    echo "usage: $0 [--self-test | --scan DIR]" >&2
    exit 2
    ;;
esac
