# hostprep host-side interpreter: runs a validated action list under the host lock.
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

if [ "$MODE" = apply ]; then
    printf '%s\n' "$EXPECT" | while read -r sum path; do
        [ -n "$sum" ] || continue
        if [ "$sum" = missing ]; then now=missing; [ -e "$path" ] && now=present
            [ "$now" = missing ] || { say "drifted $path"; exit 1; }
        else now=$(sha256sum "$path" 2>/dev/null | cut -d' ' -f1)
            [ "$now" = "$sum" ] || { say "drifted $path"; exit 1; }
        fi
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
    write)   # path uid gid mode
        eval "content=\${W$w}"; w=$((w+1))
        printf '%s' "$content" | base64 -d > "$1.hostprep-tmp" && chown "$2:$3" "$1.hostprep-tmp" \
            && chmod "$4" "$1.hostprep-tmp" && mv -f "$1.hostprep-tmp" "$1"; rc=$? ;;
    delete)  rm -f -- "$1"; rc=$? ;;
    rmdir)   rmdir -- "$1" 2>/dev/null; rc=0 ;;   # only if empty: never delete what others wrote
    chmod)   chmod "$2" -- "$1"; rc=$? ;;
    chown)   chown "$2:$3" -- "$1"; rc=$? ;;
    mkdir)   mkdir -p -- "$1" && chown "$2:$3" -- "$1" && chmod "$4" -- "$1"; rc=$? ;;
    tag)     docker tag "$1" "$2" </dev/null; rc=$? ;;
    compose-build)
        t0=$(date +%s.%N); ( cd "$PROJ" && $COMPOSE build "$@" ) </dev/null >"$log" 2>&1; rc=$?
        tail -n 15 "$log"; say "compose-seconds $t0 $(date +%s.%N)" ;;
    compose-up)
        t0=$(date +%s.%N); ( cd "$PROJ" && $COMPOSE up -d --no-deps --force-recreate "$@" ) </dev/null >"$log" 2>&1; rc=$?
        tail -n 15 "$log"; say "compose-seconds $t0 $(date +%s.%N)" ;;
    *) say "unknown action $op"; rc=64 ;;
    esac
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
