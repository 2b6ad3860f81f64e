# hostprep host-side interpreter: runs a validated action list under the host lock.
# Prepended: safe.sh (enter, kind, read_nofollow), lock.sh (the lock's holder record, lock_stale).
# Every action on a path enters its directory
# first (no link is followed there unless root made it in a root-only directory), re-checks the
# target's type in the same step, and acts with no-follow forms: temp files are new names created
# with O_CREAT|O_EXCL|O_NOFOLLOW in the target's own directory, chown -h, chmod only on a held
# directory (".") or inside a root-only one. A refusal prints "@@hostprep:refused <why>", exits 77.
# Every write is checked (its size on disk); a short one prints "@@hostprep:short-write <path> <need>
# <wrote> <free>" and exits 72. The lock is released on every way out (the EXIT trap), but one: a SIGTERM or
# SIGINT (a shutdown, a person) while the host may be half-changed ends the run as kill -9 or a reboot would,
# its lock left for the next run, which finds its holder gone and puts the snapshot back (recovery never
# rests on this run's last moments). Writes a later run reads are atomic (lock.sh's put; the write action).
# Inputs (shell variables, quoted by the transport and read from stdin):
#   MODE      apply | restore | release
#   STATE_DIR root-only state dir; LOCK_OWNER this run's token; LOCK_WAIT seconds to wait
#   TAKEOVER  1: a stale lock (its holder is gone) is taken over, with a note in the host's journal
#   BREAK_LOCK 1: any lock is removed (a person decided), with a note in the journal
#   PROJ      Compose project dir; COMPOSE "docker compose" | "docker-compose"
#   EXPECT    lines "<sha256|missing> <path>": the host must still look as the facts said (apply)
#   SNAP_ID, SNAP_B64, SNAP_SIZE  snapshot written before any change (apply), and its size in bytes
#   ACTIONS   lines "<op> <args...>"; N_ACTIONS how many; W<n> base64 content, WS<n> its size, n-th write
#   R_ACTIONS, R_N, R<n>, RS<n>  the snapshot's restore, run here at once when an apply action fails
#   MARK      this run's marker nonce: every "@@hostprep:" line is said under it (lock.sh's say); what
#             others print here (Compose) is fenced ("| " before each line), so it can never begin one
#   RUN_ID    set when run detached (runner.sh keeps its pid, log and exit code in the host's journal)
#   PROBE     optional: the fact probe, run after a successful apply in the same exec (its own
#             inputs are set too); its output follows the "@@hostprep:probe" line
set -u
umask 077
lock="$STATE_DIR/lock"
held=
note() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$STATE_DIR/journal.log" 2>/dev/null || true; }
release() { if [ "$(cat "$lock/owner" 2>/dev/null)" = "$LOCK_OWNER" ]; then rm -rf "$lock"; fi; }
# on the way out: ours, or ours but not yet named (its owner file could not be written)
# and, run detached, a line in the journal
finish() {
    _rc=$?
    undrain   # a drained worker this run did not recreate takes work again, while the lock is still ours
    if [ -n "$held" ]; then o=$(cat "$lock/owner" 2>/dev/null); [ -n "$o" ] || o=$LOCK_OWNER; [ "$o" != "$LOCK_OWNER" ] || rm -rf "$lock"; fi
    if [ -n "${RUN_ID:-}" ]; then note "run $RUN_ID ($MODE) exit $_rc"; fi
}
trap finish EXIT
# A dropped SSH session must not cut a change in half: the run goes on to its end (and its record).
trap '' HUP PIPE
changing=   # 1 while the host may be half-changed: from the snapshot stored (a restore: its first action) to done
# interrupted SIG CODE: mid-change, the lock stays (its holder, this pid, is gone once we exit: stale), with a note
interrupted() {
    if [ -n "$changing" ] && [ -n "$held" ]; then
        note "run ${RUN_ID:-} ($LOCK_OWNER, $MODE) interrupted by SIG$1 mid-change; lock left for recovery (snapshot ${SNAP_ID:-none})"
        say "interrupted SIG$1 mid-change"; held=
    fi
    exit "$2"
}
trap 'interrupted TERM 143' TERM
trap 'interrupted INT 130' INT

mkdir -p "$STATE_DIR/snapshots" && chmod 700 "$STATE_DIR" "$STATE_DIR/snapshots" || exit 70
case "$MODE" in
release) release; say released; exit 0 ;;
esac

# the holder record; while it is written the lock is ours but unnamed (lock_stale allows 30 s for that)
hold() {
    printf '%s' "$LOCK_OWNER" | put "$lock/owner" "${#LOCK_OWNER}" || exit 72
    h="pid=$$ start=$(proc_start $$) boot=$(boot_id) since=$(date -u +%Y-%m-%dT%H:%M:%SZ) owner=$LOCK_OWNER"
    h="$h mode=$MODE snapshot=${SNAP_ID:-}"
    printf '%s\n' "$h" | put "$lock/holder" $(( ${#h} + 1 )) || exit 72
}
# drop a lock someone else holds (stale, or --break-lock); one taker at a time, and re-checked under it
drop() {
    mkdir "$lock.taking" 2>/dev/null || { [ -n "$(find "$lock.taking" -maxdepth 0 -mmin +1 2>/dev/null)" ] && rm -rf "$lock.taking"; return 0; }
    why=$(if [ "${BREAK_LOCK:-0}" = 1 ]; then echo "broken by request (--break-lock)"; else lock_stale; fi)
    if [ -n "$why" ] && [ -d "$lock" ]; then
        note "lock $1 by $LOCK_OWNER ($MODE): $why; was held by: $(lock_holder)"
        say "lock-$1 $why | $(lock_holder)"; rm -rf "$lock"
    fi
    rm -rf "$lock.taking"
}
take_lock() {
    if [ "$(cat "$lock/owner" 2>/dev/null)" = "$LOCK_OWNER" ]; then held=1; hold; return 0; fi
    i=0
    until mkdir "$lock" 2>/dev/null; do
        if [ "${BREAK_LOCK:-0}" = 1 ]; then drop broken; continue; fi
        why=$(lock_stale)
        if [ -n "$why" ]; then
            [ "${TAKEOVER:-0}" = 1 ] || { say "stale $why | $(lock_holder)"; exit 74; }
            drop taken-over; continue
        fi
        i=$((i+1))
        if [ "$i" -gt "$LOCK_WAIT" ]; then say "locked $(lock_holder || cat "$lock/owner" 2>/dev/null)"; exit 75; fi
        sleep 1
    done
    held=1; hold
}
take_lock
resume_stale   # a worker a dead run left drained takes work again first

refuse() { say "refused $*"; exit 77; }
# at PATH: enter PATH's directory (in a subshell the caller opened); $base is the name inside it.
at() { base=${1##*/}; enter "${1%/*}" || refuse "${unsafe:-${1%/*} is missing}"; }

if [ "$MODE" = apply ]; then
    printf '%s\n' "$EXPECT" | while read -r sum path; do
        [ -n "$sum" ] || continue
        case "$sum" in socket:*)   # the Docker socket: its mode and owners (the path is hostprep's setting)
            now=$(stat -L -c 'socket:%a:%u:%g' -- "$path" 2>/dev/null || echo socket:missing)
            [ "$now" = "$sum" ] || { say "drifted $path"; exit 1; }; continue ;; esac
        now=$( at "$path"; case $(kind "$base") in
               missing) echo missing ;; file) read_nofollow "$base" | sha256sum | cut -d' ' -f1 ;; *) echo unsafe ;; esac )
        [ "$now" = "$sum" ] || { say "drifted $path"; exit 1; }
    done || exit 76
    drain || exit $?   # running tasks finish first; a timeout stops here, before the snapshot: nothing changed
    printf '%s' "$SNAP_B64" | base64 -d | put "$STATE_DIR/snapshots/$SNAP_ID.json" "$SNAP_SIZE" || exit 72
    changing=1; say "snapshot $SNAP_ID"
fi

# same_file NAME "UID GID MODE": NAME already holds content (a regular file, those owners and mode)
same_file() {
    [ "$(kind "$1")" = file ] && [ "$(stat -c '%u %g %a' -- "$1")" = "$2" ] &&
        [ "$(read_nofollow "$1" | sha256sum)" = "$(printf '%s' "$content" | base64 -d | sha256sum)" ]
}
same_mode() { _m=$(stat -c %a -- "$1" 2>/dev/null) && [ "$((0$_m))" = "$((0$2))" ]; }

log="$STATE_DIR/compose.log"
# run_actions LIST COUNT PREFIX: LIST's actions ("<op> <args...>" lines); the n-th write's content is
# ${PREFIX<n>} (base64) and its size ${PREFIX}S<n>. 0 when all COUNT ran; else the failed action's code.
run_actions() {
_count=$2; _pre=$3; n=0; w=0
while read -r op rest; do
    [ -n "$op" ] || continue
    set -- $rest   # every argument was validated: no spaces, no glob characters
    n=$((n+1)); say "action $n $op $*"
    case "$op" in
    write)   # path uid gid mode: a new file beside the target, checked, then renamed over it (never written through)
        eval "content=\${$_pre$w} size=\${${_pre}S$w:-}"; w=$((w+1))
        ( at "$1"
          case $(kind "$base") in file|missing) ;; *) refuse "$1 is a $(kind "$base"), not a regular file" ;; esac
          same_file "$base" "$2 $3 $4" && exit 0   # already so (a restore over an unchanged file, a read-only one)
          # mktemp -u only draws the unpredictable name; dd creates it O_CREAT|O_EXCL|O_NOFOLLOW (what
          # mkstemp does) with the mode from the umask, so no chmod ever acts on a name others can swap.
          tmp=$(mktemp -u -- ".$base.hostprep.XXXXXXXXXX") || exit 1
          err=$(printf '%s' "$content" | base64 -d | ( umask "$(printf '%03o' $(( ~0$4 & 0777 )))" &&
              dd of="$tmp" conv=excl oflag=nofollow status=none 2>&1 ))
          [ -f "$tmp" ] || { say "cause cannot write $1: ${err##*: }"; exit 1; }
          got=$(stat -c %s -- "$tmp")
          [ "$got" = "${size:-$got}" ] || { rm -f -- "$tmp"; short "$1" "$size" "$got"; exit 72; }
          # flushed before the rename and the rename after it: a power loss leaves the old bytes or the new
          sync -- "$tmp" 2>/dev/null
          chown -h "$2:$3" -- "$tmp" && mv -f -T -- "$tmp" "$base" || { rm -f -- "$tmp"; exit 1; }
          sync . 2>/dev/null; exit 0 ); rc=$? ;;
    delete)  ( at "$1"; case $(kind "$base") in dir|other) refuse "$1 is not a file" ;; esac
               rm -f -- "$base" ); rc=$? ;;
    rmdir)   ( at "$1"; [ "$(kind "$base")" = dir ] && rmdir -- "$base" 2>/dev/null ); rc=0 ;;   # only if empty: never delete what others wrote
    chmod)   # a directory is entered and changed as "."; anything else only inside a root-only directory
        ( at "$1"; case $(kind "$base") in
            dir) enter "$1" || refuse "${unsafe:-$1 vanished}"; same_mode . "$2" || chmod "$2" . ;;
            symlink|missing) refuse "$1 is a $(kind "$base")" ;;
            *) same_mode "$base" "$2" && exit 0
               [ -n "$trusted" ] || refuse "$1 is in a directory others can change"; chmod "$2" -- "$base" ;;
          esac ); rc=$? ;;
    chown)   ( at "$1"; [ "$(kind "$base")" != symlink ] || refuse "$1 is a symlink"
               [ "$(stat -c '%u %g' -- "$base" 2>/dev/null)" = "$2 $3" ] || chown -h "$2:$3" -- "$base" ); rc=$? ;;
    mkdir)   # parents as `mkdir -p` would (root's), the folder itself new, then changed as "."
        ( parent=${1%/*}; enter "${parent:-/}" || { [ -z "$unsafe" ] && mkdir -p -- "$parent" && enter "$parent"; } \
              || refuse "${unsafe:-cannot create $parent}"
          base=${1##*/}; [ "$(kind "$base")" = missing ] || refuse "$1 is already a $(kind "$base")"
          mkdir -m 700 -- "$base" && enter "$1" && chown "$2:$3" . && chmod "$4" . ); rc=$? ;;
    tag)     docker tag "$1" "$2" </dev/null; rc=$? ;;
    compose-build)
        t0=$(date +%s.%N); ( cd "$PROJ" && $COMPOSE build "$@" ) </dev/null >"$log" 2>&1; rc=$?
        tail -n 15 "$log" | sed "s/^/| /"; say "compose-seconds $t0 $(date +%s.%N)" ;;
    compose-up)   # -t 120: a warm shutdown (a Celery worker finishing a task) gets 2 min, not Compose's 10 s
        t0=$(date +%s.%N); ( cd "$PROJ" && $COMPOSE up -d --no-deps --force-recreate -t 120 "$@" ) </dev/null >"$log" 2>&1; rc=$?
        tail -n 15 "$log" | sed "s/^/| /"; say "compose-seconds $t0 $(date +%s.%N)" ;;
    compose-rm)   # stop and remove services the change added (their definition is still loaded)
        t0=$(date +%s.%N); ( cd "$PROJ" && $COMPOSE rm -s -f "$@" ) </dev/null >"$log" 2>&1; rc=$?
        tail -n 15 "$log" | sed "s/^/| /"; say "compose-seconds $t0 $(date +%s.%N)" ;;
    container-rm)   # ID: a leftover of an interrupted recreate (hostprep.leftovers), re-checked here: a full id,
        # still stopped, still under Compose's temporary name "<12 hex>_<name>"; gone already is done, else kept
        rc=64; case "$1" in *[!0-9a-f]*) ;; *) [ "${#1}" != 64 ] || rc=0 ;; esac
        if [ "$rc" = 0 ]; then
            now=$(docker inspect -f '{{.Name}} {{.State.Running}}' -- "$1" 2>/dev/null </dev/null)
            h='[0-9a-f]'
            case "$now" in
            '') ;;
            /$h$h$h$h$h$h$h$h$h$h$h${h}_*" false") docker rm -- "$1" </dev/null >/dev/null; rc=$? ;;
            *) say "kept $1: not a leftover now (${now%% *})" ;;
            esac
        fi ;;
    network-rm)   # PROJECT NETWORK: the Compose network the change added, once nothing uses it
        ids=$(docker network ls -q --filter "label=com.docker.compose.project=$1" \
              --filter "label=com.docker.compose.network=$2" </dev/null); rc=$?
        if [ "$rc" = 0 ] && [ -n "$ids" ]; then docker network rm $ids </dev/null >/dev/null; rc=$?; fi ;;
    *) say "unknown action $op"; rc=64 ;;
    esac
    if [ "$rc" != 0 ]; then
        say "failed $n $op"
        case "$rc" in 77|72) return "$rc" ;; *) return 20 ;; esac
    fi
done <<EOF_ACTIONS
$1
EOF_ACTIONS
# every action ran, or it is not an apply (a cut or empty action list never counts as one)
[ "$n" = "${_count:-$n}" ] || { say "incomplete ran $n of $_count actions"; return 73; }
}

if [ "$MODE" = restore ]; then drain || exit $?; changing=1; fi
run_actions "$ACTIONS" "${N_ACTIONS:-}" W; failed=$?
if [ "$failed" != 0 ]; then
    # a failed apply puts its snapshot back here, on the host: no controller is needed for that
    if [ "$MODE" = apply ] && [ -n "${R_ACTIONS:-}" ]; then
        note "run ${RUN_ID:-} ($LOCK_OWNER): apply failed (exit $failed); restoring snapshot $SNAP_ID"
        say "restoring $SNAP_ID"
        if run_actions "$R_ACTIONS" "${R_N:-}" R; then say "restored $SNAP_ID"; else say "restore-failed $?"; fi
    fi
    exit "$failed"
fi
changing=
undrain   # a drained worker is recreated by now (then this does nothing); its note goes
release; held=
say done
if [ -n "${PROBE:-}" ]; then
    t0=$(date +%s.%N); p=$(set +u; eval "$PROBE"); say "probe-seconds $t0 $(date +%s.%N)"
    say probe; printf '%s\n' "$p"
fi
exit 0
