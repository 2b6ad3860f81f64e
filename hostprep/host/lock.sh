# hostprep's host lock and checked writes, shared by the host scripts (prepended to each, after safe.sh).
# The lock is the directory $STATE_DIR/lock (mkdir is atomic). Inside: "owner" (the run's token) and
# "holder", one line of key=value words naming who holds it: pid, start (that process's start time in
# clock ticks, so a reused pid is never taken for the holder), boot (the kernel's boot id), since,
# owner, mode, snapshot. Its values are hostprep's own (digits, ids, validated tokens): no spaces.
lock_field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
proc_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
boot_id() { cat /proc/sys/kernel/random/boot_id 2>/dev/null; }
lock_holder() { head -n 1 "$STATE_DIR/lock/holder" 2>/dev/null; }
# lock_stale: why the lock's holder is gone; nothing while it lives or when there is no lock.
lock_stale() {
    [ -d "$STATE_DIR/lock" ] || return 0
    _h=$(lock_holder); _p=$(lock_field pid "$_h")
    case "$_p" in
    ''|*[!0-9]*)   # no holder recorded: an older hostprep, or a run cut between mkdir and its record
        _age=$(( $(date +%s) - $(stat -c %Y "$STATE_DIR/lock" 2>/dev/null || date +%s) ))
        if [ "$_age" -gt 30 ]; then echo "no holder recorded, lock ${_age}s old"; fi ;;
    *) if [ "$(lock_field boot "$_h")" != "$(boot_id)" ]; then echo "its holder ran before the host rebooted"
       elif [ "$(proc_start "$_p")" != "$(lock_field start "$_h")" ]; then echo "its holder (pid $_p) is gone"; fi ;;
    esac
}

# say WORDS: a marker line; under the run's nonce (MARK, set by the controller) when there is one
say() { printf '@@hostprep:%s%s\n' "${MARK:+$MARK:}" "$*"; }
# short PATH NEED WROTE: name a short write, with the free space where it was written
short() { say "short-write $1 $2 $3 $(df -P -B1 -- "${1%/*}" 2>/dev/null | awk 'NR==2 {print $4}')"; }
# put PATH SIZE < bytes: PATH replaced atomically by a file checked to hold all SIZE bytes: written to a new
# temp file beside it (mktemp: O_EXCL, 0600, a hidden name no reader lists), flushed to disk, renamed over PATH,
# the rename flushed too; a power loss leaves the old file or the new one, never a truncated one. A short write
# is removed, named, exit 72 (in a pipeline that is the pipeline's status: callers add "|| exit 72").
put() {
    _t=$(mktemp -- "${1%/*}/.${1##*/}.XXXXXXXXXX" 2>/dev/null) || { short "$1" "$2" 0; exit 72; }
    cat > "$_t"; _w=$(stat -c %s -- "$_t" 2>/dev/null || echo 0)
    if [ "$_w" = "$2" ] && sync -- "$_t" 2>/dev/null && mv -f -T -- "$_t" "$1"; then
        sync -- "${1%/*}" 2>/dev/null; return 0
    fi
    short "$1" "$2" "$_w"; rm -f -- "$_t"; exit 72
}

