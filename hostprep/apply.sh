# hostprep host-side interpreter: runs a validated action list under the host lock.
# Prepended: safe.sh (enter, kind, read_nofollow). Every action on a path enters its directory
# first (no link is followed there unless root made it in a root-only directory), re-checks the
# target's type in the same step, and acts with no-follow forms: temp files are new names created
# with O_CREAT|O_EXCL|O_NOFOLLOW in the target's own directory, chown -h, chmod only on a held
# directory (".") or inside a root-only one. A refusal prints "@@hostprep:refused <why>", exits 77.
# Inputs (shell variables, quoted by the transport and read from stdin):
#   MODE      apply | restore | release
#   STATE_DIR root-only state dir; LOCK_OWNER this run's token; LOCK_WAIT seconds to wait
#   PROJ      Compose project dir; COMPOSE "docker compose" | "docker-compose"
#   EXPECT    lines "<sha256|missing> <path>": the host must still look as the facts said (apply)
#   SNAP_ID, SNAP_B64  snapshot written before any change (apply)
#   ACTIONS   lines "<op> <args...>"; W<n> base64 content for the n-th write
#   PROBE     optional: the fact probe, run after a successful apply in the same exec (its own
#             inputs are set too); its output follows the "@@hostprep:probe" line
set -u
umask 077
lock="$STATE_DIR/lock"
say() { printf '@@hostprep:%s\n' "$*"; }
release() { if [ "$(cat "$lock/owner" 2>/dev/null)" = "$LOCK_OWNER" ]; then rm -rf "$lock"; fi; }

mkdir -p "$STATE_DIR/snapshots" && chmod 700 "$STATE_DIR" "$STATE_DIR/snapshots" || exit 70
case "$MODE" in
release) release; say released; exit 0 ;;
esac

# take the lock (or keep it, if this run already holds it)
if [ "$(cat "$lock/owner" 2>/dev/null)" != "$LOCK_OWNER" ]; then
    i=0
    until mkdir "$lock" 2>/dev/null; do
        i=$((i+1))
        if [ "$i" -gt "$LOCK_WAIT" ]; then say "locked $(cat "$lock/owner" 2>/dev/null) $(cat "$lock/since" 2>/dev/null)"; exit 75; fi
        sleep 1
    done
    printf '%s' "$LOCK_OWNER" > "$lock/owner"; date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"
fi

refuse() { say "refused $*"; exit 77; }
# at PATH: enter PATH's directory (in a subshell the caller opened); $base is the name inside it.
at() { base=${1##*/}; enter "${1%/*}" || refuse "${unsafe:-${1%/*} is missing}"; }

if [ "$MODE" = apply ]; then
    printf '%s\n' "$EXPECT" | while read -r sum path; do
        [ -n "$sum" ] || continue
        now=$( at "$path"; case $(kind "$base") in
               missing) echo missing ;; file) read_nofollow "$base" | sha256sum | cut -d' ' -f1 ;; *) echo unsafe ;; esac )
        [ "$now" = "$sum" ] || { say "drifted $path"; exit 1; }
    done || { release; exit 76; }
    printf '%s' "$SNAP_B64" | base64 -d > "$STATE_DIR/snapshots/$SNAP_ID.json" || { release; exit 71; }
    say "snapshot $SNAP_ID"
fi

n=0; w=0
printf '%s\n' "$ACTIONS" > "$STATE_DIR/actions.$$"
log="$STATE_DIR/compose.log"
while read -r op rest; do
    [ -n "$op" ] || continue
    set -- $rest   # every argument was validated: no spaces, no glob characters
    n=$((n+1)); say "action $n $op $*"
    case "$op" in
    write)   # path uid gid mode: a new file beside the target, then renamed over it (never written through)
        eval "content=\${W$w}"; w=$((w+1))
        ( at "$1"
          case $(kind "$base") in file|missing) ;; *) refuse "$1 is a $(kind "$base"), not a regular file" ;; esac
          # mktemp -u only draws the unpredictable name; dd creates it O_CREAT|O_EXCL|O_NOFOLLOW (what
          # mkstemp does) with the mode from the umask, so no chmod ever acts on a name others can swap.
          tmp=$(mktemp -u -- ".$base.hostprep.XXXXXXXXXX") || exit 1
          printf '%s' "$content" | base64 -d | ( umask "$(printf '%03o' $(( ~0$4 & 0777 )))" &&
              dd of="$tmp" conv=excl oflag=nofollow status=none ) \
              && chown -h "$2:$3" -- "$tmp" && mv -f -T -- "$tmp" "$base" || { rm -f -- "$tmp"; exit 1; } ); rc=$? ;;
    delete)  ( at "$1"; case $(kind "$base") in dir|other) refuse "$1 is not a file" ;; esac
               rm -f -- "$base" ); rc=$? ;;
    rmdir)   ( at "$1"; [ "$(kind "$base")" = dir ] && rmdir -- "$base" 2>/dev/null ); rc=0 ;;   # only if empty: never delete what others wrote
    chmod)   # a directory is entered and changed as "."; anything else only inside a root-only directory
        ( at "$1"; case $(kind "$base") in
            dir) enter "$1" || refuse "${unsafe:-$1 vanished}"; chmod "$2" . ;;
            symlink|missing) refuse "$1 is a $(kind "$base")" ;;
            *) [ -n "$trusted" ] || refuse "$1 is in a directory others can change"; chmod "$2" -- "$base" ;;
          esac ); rc=$? ;;
    chown)   ( at "$1"; [ "$(kind "$base")" != symlink ] || refuse "$1 is a symlink"
               chown -h "$2:$3" -- "$base" ); rc=$? ;;
    mkdir)   # parents as `mkdir -p` would (root's), the folder itself new, then changed as "."
        ( parent=${1%/*}; enter "${parent:-/}" || { [ -z "$unsafe" ] && mkdir -p -- "$parent" && enter "$parent"; } \
              || refuse "${unsafe:-cannot create $parent}"
          base=${1##*/}; [ "$(kind "$base")" = missing ] || refuse "$1 is already a $(kind "$base")"
          mkdir -m 700 -- "$base" && enter "$1" && chown "$2:$3" . && chmod "$4" . ); rc=$? ;;
    tag)     docker tag "$1" "$2" </dev/null; rc=$? ;;
    compose-build)
        t0=$(date +%s.%N); ( cd "$PROJ" && $COMPOSE build "$@" ) </dev/null >"$log" 2>&1; rc=$?
        tail -n 15 "$log"; say "compose-seconds $t0 $(date +%s.%N)" ;;
    compose-up)
        t0=$(date +%s.%N); ( cd "$PROJ" && $COMPOSE up -d --no-deps --force-recreate "$@" ) </dev/null >"$log" 2>&1; rc=$?
        tail -n 15 "$log"; say "compose-seconds $t0 $(date +%s.%N)" ;;
    *) say "unknown action $op"; rc=64 ;;
    esac
    if [ "$rc" = 77 ]; then say "failed $n $op"; rm -f "$STATE_DIR/actions.$$"; exit 77; fi
    if [ "$rc" != 0 ]; then say "failed $n $op"; rm -f "$STATE_DIR/actions.$$"; exit 20; fi
done < "$STATE_DIR/actions.$$"
rm -f "$STATE_DIR/actions.$$"
if [ "${RELEASE:-0}" = 1 ]; then release; fi
say done
if [ -n "${PROBE:-}" ]; then
    t0=$(date +%s.%N); p=$(set +u; eval "$PROBE"); say "probe-seconds $t0 $(date +%s.%N)"
    say probe; printf '%s\n' "$p"
fi
exit 0
