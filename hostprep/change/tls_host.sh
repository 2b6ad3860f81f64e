# hostprep remote-tls, host side: the files remote-tls manages on a host (the task host's drop-in and
# server keys, the Airflow host's client certificates), read and changed under the host lock, and the
# checks inside the worker. Prepended: safe.sh (enter, kind, read_nofollow), lock.sh (lock fields, say).
# Inputs (shell variables, quoted by the transport and read from stdin):
#   MODE       facts | hold | put | release | check
#   STATE_DIR  root-only state dir; LOCK_OWNER this run's token; LOCK_WAIT seconds to wait for the lock
#   PATHS      (facts) lines: paths to report; PORT (facts) the TCP port to look at; STAT_ONLY=1: no contents
#   HOLD_SECONDS, SNAP_ID (hold): how long the lock may be held at most; the snapshot it protects
#   ACTIONS    (put) lines "mkdir PATH MODE" | "write PATH MODE" | "delete PATH" | "rmdir PATH";
#              the n-th write's content is $W<n> (base64), its size $WS<n>
#   RESTART=1  (put) daemon-reload, restart docker.service once, wait for it; WAIT_PORT: and for its TCP port
#   CID, URL, CERTS, OTHER_B64, NONCE, PY (check): the worker, DOCKER_HOST, DOCKER_CERT_PATH, another CA's
#              client certificate and key (PEM, base64), the fence of the worker's answers, the python check
set -u
umask 077
lock="$STATE_DIR/lock"
holdfile="$STATE_DIR/remote-tls.holder"
m() { printf '\n@@hostprep:%s\n' "$1"; }
refuse() { say "refused $*"; exit 77; }
at() { base=${1##*/}; enter "${1%/*}" || refuse "${unsafe:-${1%/*} is missing}"; }
# listening PORT: something listens on that TCP port (any address, IPv4 or IPv6)
listening() {
    awk -v p=":$(printf '%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
ours() { [ "$(cat "$lock/owner" 2>/dev/null)" = "$LOCK_OWNER" ]; }

case "$MODE" in
facts)
    m files
    printf '%s\n' "$PATHS" | while read -r p; do
        [ -n "$p" ] || continue
        ( if enter "${p%/*}"; then b=${p##*/}
              case $(kind "$b") in
              file) printf 'file %s %s %s\n' "$p" "$(stat -c '%a %u %g' -- "$b")" \
                        "$([ "${STAT_ONLY:-0}" = 1 ] || read_nofollow "$b" | base64 -w0)" ;;
              dir) printf 'dir %s %s\n' "$p" "$(stat -c '%a %u %g' -- "$b")" ;;
              missing) printf 'missing %s\n' "$p" ;;
              *) printf 'unsafe %s %s\n' "$p" "$(kind "$b")" ;;
              esac
          elif [ -n "$unsafe" ]; then printf 'unsafe %s link\n' "$p"
          else printf 'missing %s\n' "$p"; fi )
    done
    m unit
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        f=$(systemctl show docker.service -p FragmentPath --value 2>/dev/null)
        printf 'active %s\n' "$(systemctl show docker.service -p ActiveState --value 2>/dev/null)"
        printf 'fragment %s\n' "$f"
        if [ -n "$f" ] && [ -f "$f" ]; then printf 'execstart %s\n' "$(sed -n 's/^ExecStart=//p' "$f" | tail -n 1 | base64 -w0)"; fi
        for d in $(systemctl show docker.service -p DropInPaths --value 2>/dev/null); do
            if grep -q '^ExecStart=.' "$d" 2>/dev/null; then printf 'execstart-dropin %s\n' "$d"; fi
        done
    fi
    m port
    if [ -n "${PORT:-}" ] && listening "$PORT"; then echo busy; fi
    m end ;;
hold)   # the lock, held by a sleeper (its pid and start time are the holder) until release or HOLD_SECONDS
    mkdir -p "$STATE_DIR" && chmod 700 "$STATE_DIR" || exit 70
    i=0
    until mkdir "$lock" 2>/dev/null; do
        ours && break
        why=$(lock_stale)
        [ -z "$why" ] || { say "stale $why | $(lock_holder)"; exit 74; }
        i=$((i + 1)); [ "$i" -le "$LOCK_WAIT" ] || { say "locked $(lock_holder)"; exit 75; }
        sleep 1
    done
    printf '%s' "$LOCK_OWNER" | put "$lock/owner" "${#LOCK_OWNER}" || exit 72
    if [ -f "$holdfile" ]; then   # this run's earlier hold (the interpreter took the lock over since): end its sleeper
        read -r sp st ow < "$holdfile"
        if [ "$ow" = "$LOCK_OWNER" ] && [ "$(proc_start "$sp")" = "$st" ]; then kill "$sp" 2>/dev/null; fi
    fi
    setsid sleep "$HOLD_SECONDS" </dev/null >/dev/null 2>&1 &
    sp=$!; st=$(proc_start "$sp")
    h="pid=$sp start=$st boot=$(boot_id) since=$(date -u +%Y-%m-%dT%H:%M:%SZ) owner=$LOCK_OWNER mode=remote-tls snapshot=${SNAP_ID:-}"
    printf '%s\n' "$h" | put "$lock/holder" $(( ${#h} + 1 )) || exit 72
    printf '%s %s %s\n' "$sp" "$st" "$LOCK_OWNER" > "$holdfile"
    say held; exit 0 ;;
release)
    if [ -f "$holdfile" ]; then
        read -r sp st ow < "$holdfile"
        if [ "$ow" = "$LOCK_OWNER" ]; then
            [ "$(proc_start "$sp")" != "$st" ] || kill "$sp" 2>/dev/null
            rm -f "$holdfile"
        fi
    fi
    if ours; then rm -rf "$lock"; fi
    say released; exit 0 ;;
put) ;;
check)  # inside the worker: TLS works; no client certificate, another CA's, and plain TCP are refused;
        # with the worker's docker CLI, else its python3 (an Airflow image has docker-py, not the CLI); a clean
        # environment and a root-owned PATH either way; the answers fenced by this run's nonce
    docker exec -i "$CID" /bin/sh -c 'n=$1; u=$2; c=$3; t=$(mktemp -d) || exit 1; trap "rm -rf $t" EXIT
base64 -d > "$t/other.pem"
e() { /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent \
      DOCKER_CONFIG=/nonexistent LC_ALL=C "$@" >/dev/null 2>&1; echo $?; }
if command -v docker >/dev/null 2>&1; then
    printf "@@%s tls %s\n" "$n" "$(e DOCKER_HOST=$u DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$c docker ps -q)"
    printf "@@%s nocert %s\n" "$n" "$(e docker -H $u --tls --tlscacert=$c/ca.pem ps -q)"
    printf "@@%s otherca %s\n" "$n" "$(e docker -H $u --tlsverify --tlscacert=$c/ca.pem --tlscert=$t/other.pem --tlskey=$t/other.pem ps -q)"
    printf "@@%s plain %s\n" "$n" "$(e docker -H $u ps -q)"
else
    for k in tls nocert otherca plain; do printf "@@%s %s %s\n" "$n" "$k" "$(e python3 -I -c "$4" "$u" "$c" "$t/other.pem" "$k")"; done
fi
if [ -S /var/run/docker.sock ]; then s=socket; else s=none; fi
printf "@@%s sock %s\n" "$n" "$s"' sh "$NONCE" "$URL" "$CERTS" "$PY" <<EOF
$OTHER_B64
EOF
    exit 0 ;;
*) say "unknown mode"; exit 2 ;;
esac

# put: the actions, under this run's lock
ours || { say "locked not held by this run ($(lock_holder))"; exit 75; }
w=0
while read -r op p md; do
    [ -n "$op" ] || continue
    say "action $op $p"
    case "$op" in
    mkdir) ( at "$p"; [ -n "$trusted" ] || refuse "$p: its folder is not root-only"
             case $(kind "$base") in dir) ;; missing) mkdir -- "$base" ;; *) refuse "$p is not a folder" ;; esac
             chown 0:0 -- "$base" && chmod "$md" -- "$base" ) ;;
    write) eval "content=\${W$w} size=\${WS$w}"; w=$((w + 1))
           ( at "$p"; [ -n "$trusted" ] || refuse "$p: its folder is not root-only"
             case $(kind "$base") in file|missing) ;; *) refuse "$p is not a regular file" ;; esac
             tmp=$(mktemp -- ".$base.hostprep.XXXXXXXXXX") || exit 1
             printf '%s' "$content" | base64 -d > "$tmp"
             [ "$(stat -c %s -- "$tmp")" = "$size" ] || { rm -f -- "$tmp"; short "$p" "$size" 0; exit 72; }
             chown 0:0 -- "$tmp" && chmod "$md" -- "$tmp" && mv -f -- "$tmp" "$base" ) ;;
    delete) ( at "$p"; case $(kind "$base") in file) rm -f -- "$base" ;; missing) ;; *) refuse "$p is not a file" ;; esac ) ;;
    rmdir) ( at "$p"; [ "$(kind "$base")" != dir ] || rmdir -- "$base" 2>/dev/null; exit 0 ) ;;
    *) refuse "unknown action $op" ;;
    esac
    rc=$?
    [ "$rc" = 0 ] || { say "failed $op $p"; exit "$rc"; }
done <<EOF
$ACTIONS
EOF
if [ "${RESTART:-0}" = 1 ]; then
    say "action restart docker.service"
    systemctl daemon-reload || { say "cause systemctl daemon-reload failed"; exit 21; }
    if ! systemctl restart docker.service; then
        say "cause docker.service did not restart: $(journalctl -u docker.service -n 3 -o cat --no-pager 2>/dev/null | tr '\n' ' ' | cut -c1-400)"
        exit 21
    fi
    i=0
    until docker version >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -le 60 ] || { say "cause dockerd did not answer on its socket within 60 s"; exit 21; }
        sleep 1
    done
    if [ -n "${WAIT_PORT:-}" ]; then
        i=0
        until listening "$WAIT_PORT"; do
            i=$((i + 1)); [ "$i" -le 30 ] || { say "cause dockerd does not listen on TCP $WAIT_PORT after the restart"; exit 21; }
            sleep 1
        done
    fi
fi
say done
