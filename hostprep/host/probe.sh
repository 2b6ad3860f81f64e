# hostprep fact probe: everything hostprep needs to know about a host, in one exec.
# Prepended: safe.sh (enter, kind, read_nofollow), lock.sh (lock_holder, lock_stale).
# Inputs (shell variables, quoted by the transport): SOCK PROJ WORKER_SVC BIND_DIRS DEEP VERSIONS STATE_DIR FILES
#   DOCKER_URL  optional: tcp://NAME:PORT the in-worker checks use as DOCKER_HOST (a strategy's proxy)
#   DAGS        optional: the DAG folder, whose Docker options the posture checks read
#   DEEP=1      also run `id` and `docker ps` inside the worker, in one docker exec (the proof; ~0.2 s on the host)
#   VERSIONS=1  also ask dockerd and Compose for their versions (0.1-0.5 s)
# Output (written at once): sections "@@hostprep:<key>" followed by their raw lines; parsed by hostprep.facts.
m() { printf '\n@@hostprep:%s\n' "$1"; }
# The in-worker checks. This run's nonce is the first line on stdin (never an argument: every process in
# the container can read every command line); every field they print is fenced by it. $1: airflow in
# the worker (yes|no), $2 the socket, $3 the Engine API fallback (Python, started only without a docker CLI), $4: the DOCKER_HOST hostprep's
# strategy gives the worker (a proxy), if any; then $5 (the worker's id) serves the negative checks:
# calls the proxy must refuse (403), asked the way a task would ask.
WORKER_SCRIPT='IFS= read -r n || exit 2; case $n in ""|*[!0-9a-f]*) exit 2 ;; esac
m() { printf "@@hostprep-%s:%s\n" "$n" "$1"; }
py() { if python3 -I -P -c "" </dev/null >/dev/null 2>&1; then python3 -I -P "$@"; else python3 -I "$@"; fi; }
m worker_id; /usr/bin/id; rc=$?; echo "airflow=$1"; echo "rc=$rc"; m worker_docker_ps
if command -v docker >/dev/null 2>&1; then o=$(docker ps -q 2>&1); rc=$?; echo method=docker-cli
else o=$(py -c "$3" "${4:-$2}" 2>&1 </dev/null); rc=$?; echo method=engine-api; fi
printf "%s\n" "$o" | tail -n 3; echo "rc=$rc"
if [ -n "$4" ]; then m worker_denied
for w in "volumes|volume ls -q|GET /volumes" "networks|network ls -q|GET /networks" "exec|exec $5 true|POST /containers/$5/exec" \
         "system|system df|GET /system/df" "swarm|node ls|GET /nodes" "secrets|secret ls|GET /secrets"; do
    k=${w%%|*}; r=${w#*|}
    if command -v docker >/dev/null 2>&1; then o=$(docker ${r%%|*} 2>&1 </dev/null); else o=$(py -c "$3" "$4" "${r#*|}" 2>&1 </dev/null); fi
    case $o in *"403 Forbidden"*) echo "$k 403" ;; *) echo "$k not-refused" ;; esac
done; fi; m worker_end'
# enter_once DIR: enter DIR (safe.sh), once for a run of calls with the same DIR: the shell holds it between them,
# so the project's files and folders cost one walk from / (each walk is a few stat processes), not one each
enter_once() {
    if [ "${_at-}" != "$1" ]; then _at=$1; _at_rc=0; enter "$1" || _at_rc=1; _at_unsafe=$unsafe; fi
    unsafe=$_at_unsafe; return $_at_rc
}
nl='
'
# The project's own files and folders are stat'ed in one process each kind (stat_batch), not one per name:
# lines "NAME/FIELDS" in $batch; batched NAME: its FIELDS in $fields. Names come from the settings (no /, space
# or newline in a name; the slash ends it).
stat_batch() { batch=; [ $# = 0 ] || batch=$nl$(stat -c "%n/$1" -- "$@" 2>/dev/null)$nl; }
batched() { case $batch in *"$nl$1/"*) fields=${batch#*"$nl$1/"}; fields=${fields%%"$nl"*}; return 0 ;; esac; return 1; }
probe_file() {   # DIR NAME: "unsafe <why>", nothing (missing), or "mode uid gid size" + base64 content
    enter_once "$1" || { if [ -n "$unsafe" ]; then echo "unsafe $unsafe"; fi; return 0; }
    kind_of "$2"; case $kind in
    file) if [ "$1" = "$PROJ" ] && batched "$2"; then printf '%s\n' "$fields"; else stat -c '%a %u %g %s' -- "$2"; fi
          read_nofollow "$2" | base64 -w0; echo ;;
    missing) ;;
    symlink) echo "unsafe $1/$2 is a symlink" ;;
    *) echo "unsafe $1/$2 is not a regular file" ;;
    esac
}
probe_dir() {    # LABEL DIR NAME [scan]: "LABEL uid gid mode", "LABEL missing" or "LABEL unsafe <why>"
    enter_once "${2:-/}" || { if [ -n "$unsafe" ]; then echo "$1 unsafe $unsafe"; else echo "$1 missing"; fi; return 0; }
    kind_of "$3"; case $kind in
    dir) if [ "$2" = "$PROJ" ] && [ "$1" = "$3" ]; then dirs="$dirs $3"   # stat'ed with the others, below
         else stat -c "$1 %u %g %a" -- "$3"; fi
         # the DAG folder: lines that set Docker options (posture), "./FILE:LINE:TEXT" as grep prints them, all
         # base64 on one "dags: " line: no byte a DAG author writes (in a line or a file name) opens a line here.
         # Entered only if it is the directory NAME here and no link (cd -P sets PWD to where it really landed),
         # in a subshell: the caller's shell stays where enter_once left it
         if [ "${4:-}" = scan ]; then ( _here=$PWD; cd -P -- "$3" 2>/dev/null && [ "$PWD" = "${_here%/}/$3" ] && \
             printf 'dags: %s\n' "$(grep -r -n -I --include='*.py' -E \
                 'docker_url|privileged|docker\.sock|Mount\(|source *=|volumes *=|mounts *=' . 2>/dev/null |
                 awk 'NR <= 400 { print substr($0, 1, 400) }' | base64 -w0)" ); fi ;;
    missing) echo "$1 missing" ;;
    symlink) echo "$1 unsafe $2/$3 is a symlink" ;;
    *) echo "$1 unsafe $2/$3 is not a directory" ;;
    esac
}
# socket-proxy's guard: the refusals it must make, asked from inside the worker as a task would ask, as raw
# HTTP over bash's /dev/tcp (no CLI, no python needed). GUARD_CHECKS: "name<TAB>METHOD<TAB>PATH<TAB>base64(body)"
# lines from hostprep.guard_checks; answers "nonce<TAB>name<TAB>status<TAB>message", base64-encoded.
GUARD_SCRIPT='u=${1#tcp://}; h=${u%:*}; p=${u##*:}; w=$2; img=$3; n=$4
ask() { exec 3<>"/dev/tcp/$h/$p" || return; printf "%s %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s" "$1" "$2" "${#3}" "$3" >&3; timeout 30 head -c 4096 <&3; exec 3<&-; }
case $(ask GET /hostprep-guard "") in *"is not opened by hostprep"*) ;; *) exit 0 ;; esac   # the guard, nothing else
while IFS=$'"'"'\t'"'"' read -r name method path b64; do
    body=$(printf "%s" "$b64" | base64 -d); body=${body//@WORKER@/$w}; body=${body//@IMAGE@/$img}
    path=${path//@WORKER@/$w}; path=${path//@NONCE@/$n}
    r=$(ask "$method" "$path" "$body" | tr -d "\r\t")
    s=$(printf "%s\n" "$r" | head -n 1 | cut -d " " -f 2); msg=$(printf "%s" "$r" | sed -n "s/.*\"message\": *\"\([^\"]*\)\".*/\1/p" | head -n 1)
    printf "%s\t%s\t%s\t%s\n" "$n" "$name" "${s:-none}" "$msg"
done; ask DELETE "/containers/hostprep-guard-check-$n?force=1" "" >/dev/null'
guard_checks() {
    [ -n "$cid" ] && [ "$DEEP" = 1 ] && [ -n "${GUARD_CHECKS:-}" ] && [ -n "$DOCKER_URL" ] || return 0
    gn=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    set -- "$(docker inspect -f '{{.Name}}' "$cid" | sed 's#^/##')" "$(docker inspect -f '{{.Config.Image}}' "$cid")"
    out=$(printf '%s' "$GUARD_CHECKS" | docker exec -i "$cid" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LC_ALL=C /bin/bash -c "$GUARD_SCRIPT" bash "$DOCKER_URL" "$1" "$2" "$gn" 2>&1)
    m worker_guard; echo "$gn"; printf '%s' "$out" | base64 -w0; echo
}
probe() {
m os; ( . /etc/os-release 2>/dev/null && printf '%s' "$PRETTY_NAME" )
m docker_group; getent group docker
m socket; if [ -e "$SOCK" ]; then stat -L -c '%f %u %g %U %G' -- "$SOCK"; l=$(ls -ldL -- "$SOCK"); [ -z "$l" ] || printf '%s\n' "${l%"${l#???????????}"}"; fi
m dockerd
pid=; { read -r pid < /var/run/docker.pid; } 2>/dev/null   # no newline at its end: read fails, pid is set
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo running; elif pgrep -x dockerd >/dev/null 2>&1; then echo running; fi
m daemon    # how dockerd listens (posture): daemon.json, its flags, its own TCP listeners; see hostprep.posture_facts
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || pid=$(pgrep -x -o dockerd 2>/dev/null)
if [ -r /etc/docker/daemon.json ]; then printf 'daemonjson %s\n' "$(base64 -w0 /etc/docker/daemon.json)"; fi
if [ -n "$pid" ]; then   # one awk: the command line (NUL-separated), dockerd's socket fds (ls on stdin), TCP listeners
    ls -l "/proc/$pid/fd" 2>/dev/null | awk '
        FILENAME ~ /cmdline$/ { gsub(/[\n\t]/, " "); args = args " " $0; next }
        FILENAME ~ /net\/tcp6?$/ { if ($4 == "0A" && ($10 in fds)) print "listen " $2; next }
        match($0, /socket:\[[0-9]+\]/) { fds[substr($0, RSTART + 8, RLENGTH - 9)] = 1 }
        END { print "cmdline" args }' RS='\0' "/proc/$pid/cmdline" RS='\n' - /proc/net/tcp /proc/net/tcp6 2>/dev/null
fi
m dockerd_cmdline   # who makes the socket (-H fd:// = systemd hands it over); NUL-separated, base64
if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then base64 -w0 "/proc/$pid/cmdline"; echo; fi
m socket_unit       # docker.socket as systemd has it loaded (drop-ins merged), and its group's entry; base64
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    u=$(systemctl show docker.socket -p Id -p LoadState -p ActiveState -p UnitFileState -p Listen -p SocketMode \
        -p SocketUser -p SocketGroup -p FragmentPath -p DropInPaths 2>/dev/null)
    g=; while IFS= read -r l; do case $l in SocketGroup=*) g=${l#SocketGroup=}; break ;; esac; done <<EOF
$u
EOF
    { printf '%s\n' "$u"; if [ -n "$g" ]; then printf 'GroupEntry=%s\n' "$(getent group -- "$g")"; fi; } | base64 -w0; echo
fi
m compose   # found by presence; versions only when asked
v2=; for d in /usr/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins /usr/local/lib/docker/cli-plugins \
              /usr/local/libexec/docker/cli-plugins "$HOME/.docker/cli-plugins"; do
    [ -x "$d/docker-compose" ] && { v2=1; break; }; done
if [ -n "$v2" ]; then echo "v2 $([ "$VERSIONS" = 1 ] && docker compose version --short 2>/dev/null)"
elif command -v docker-compose >/dev/null 2>&1; then echo "v1 $([ "$VERSIONS" = 1 ] && docker-compose version --short 2>/dev/null)"; fi
m docker_version; if [ "$VERSIONS" = 1 ]; then docker version --format '{{.Server.Version}}' 2>/dev/null; fi
(   # one subshell: enter_once enters the project once for it, its files and its folders
m project; if enter_once "$PROJ"; then echo exists
    set --; for f in $FILES; do case $f in */*) ;; *) kind_of "$f"; [ "$kind" != file ] || set -- "$@" "$f" ;; esac; done
    stat_batch '%a %u %g %s' "$@"
elif [ -n "$unsafe" ]; then echo "unsafe $unsafe"; fi
for f in $FILES; do
    m "file:$f"; p="$PROJ/$f"; probe_file "${p%/*}" "${p##*/}"
done
m bind_dirs
printf '%s' "$BIND_DIRS" | { dirs=; while read -r d p; do   # "name path" lines: the paths come from hostprep.layout
    s=; [ "$p" = "$DAGS" ] && s=scan
    probe_dir "$d" "${p%/*}" "${p##*/}" $s
done; [ -z "$dirs" ] || { enter_once "$PROJ" && stat -c '%n %u %g %a' -- $dirs; }; }   # the project's folders
)
m record; if [ -e "$STATE_DIR/state.json" ]; then cat "$STATE_DIR/state.json" 2>/dev/null; fi
m runs   # the last runs in the host's journal: how each ended, or whether it still runs
# (the journal's names by glob, which sorts them: no ls, sort or tail; one awk per run)
set --; for d in "$STATE_DIR"/runs/*; do if [ -e "$d" ] || [ -L "$d" ]; then set -- "$@" "${d##*/}"; fi; done
while [ $# -gt 3 ]; do shift; done
for r; do
    d="$STATE_DIR/runs/$r"; read -r rpid rstart rmode 2>/dev/null < "$d/pid" || rpid=
    alive=0; if [ -n "$rpid" ] && [ -d "/proc/$rpid" ] && [ "$(proc_start "$rpid")" = "$rstart" ]; then alive=1; fi
    rexit=; { read -r rexit < "$d/exit"; } 2>/dev/null
    echo "run $r mode=${rmode:-?} exit=$rexit alive=$alive"
    # its markers (said under the run's nonce), as "> marker ...": a line of the probe that starts "@@hostprep:" opens a
    # section. The first 3 of snapshot/failed/restored, then the last action; "@@hostprep:" may carry "<24 hex>:"
    awk 'substr($0, 1, 11) == "@@hostprep:" { l = substr($0, 12)
             if (l ~ /^[0-9a-f]+:/) { if (index(l, ":") != 25) next; l = substr(l, 26) }
             if (l ~ /^(snapshot|failed|restored) /) { if (n < 3) { n++; print "> " l } }
             else if (l ~ /^action /) a = "> " l }
         END { if (a != "") print a }' "$d/log" 2>/dev/null
done
m snapshots; l=; for s in "$STATE_DIR"/snapshots/*; do if [ -e "$s" ] || [ -L "$s" ]; then l=${s##*/}; fi; done
[ -z "$l" ] || printf '%s\n' "$l"
m lock; if [ -d "$STATE_DIR/lock" ]; then echo "held $(lock_holder)"; s=$(lock_stale); [ -z "$s" ] || echo "stale $s"; fi
cid=; pid=0
if [ -d /var/lib/docker/containers ]; then
    # dockerd's own record of the containers: no docker CLI (each call costs ~50 ms on the host)
    m worker_files
    for f in $(grep -l -F "\"com.docker.compose.service\":\"$WORKER_SVC\"" /var/lib/docker/containers/*/config.v2.json 2>/dev/null); do
        grep -q -F "\"com.docker.compose.project.working_dir\":\"$PROJ\"" "$f" || continue
        p=$(grep -o -m 1 '"Pid":[0-9]*' "$f"); p=${p#'"Pid":'}; p=${p%%[!0-9]*}   # the first, as one process
        ids=; if [ "${p:-0}" -gt 0 ]; then   # its ids as the kernel has them, read by the shell
            while read -r k v; do case $k in Uid:|Gid:|Groups:) ids="$ids$k $v ";; esac; done 2>/dev/null < "/proc/$p/status"; fi
        printf 'config %s\nhostconfig %s\nproc %s\n' "$(base64 -w0 "$f")" "$(base64 -w0 "${f%/config.v2.json}/hostconfig.json")" "$ids"
        if [ -z "$cid" ] && [ "${p:-0}" -gt 0 ]; then d=${f%/config.v2.json}; cid=${d##*/}; pid=$p; fi
    done
    # the project's containers and any other that mounts the socket: a few scalar fields of each
    # config (no env but DOCKER_HOST) and its one-line host config, every line prefixed by its path
    # (grep -H); each kind base64 on one line ("fields ", "hostconfigs "): dockerd's JSON leaves U+0085
    # unescaped, and a compose value must not open a line of the probe. A field counts only where a JSON
    # token starts (after [ { or ,) and holds no escape: text inside a value cannot pose as one.
    # Five processes however many containers. hostprep.containers parses it.
    m containers
    set -- $(grep -l -F -e "\"com.docker.compose.project.working_dir\":\"$PROJ\"" -e docker.sock -e "$SOCK" \
        /var/lib/docker/containers/*/config.v2.json 2>/dev/null)
    if [ $# -gt 0 ]; then
        printf 'fields %s\n' "$(grep -o -H -E \
            '[{,]"(Running|Pid|User|Name|Image|com\.docker\.compose\.(service|project))":("[^"\\]*"|[a-z0-9]+)|[[,]"DOCKER_HOST=[^"\\]*"' \
            "$@" 2>/dev/null | base64 -w0)"
        for f; do shift; set -- "$@" "${f%/config.v2.json}/hostconfig.json"; done
        printf 'hostconfigs %s\n' "$(grep -H '' "$@" 2>/dev/null | base64 -w0)"
    fi
else
    cid=$(docker ps -aq --no-trunc --filter "label=com.docker.compose.project.working_dir=$PROJ" \
          --filter "label=com.docker.compose.service=$WORKER_SVC" 2>/dev/null | head -n1)
    m worker
    if [ -n "$cid" ]; then
        docker inspect -f '{{.Name}}|{{.State.Status}}|{{.State.Pid}}|{{.Config.Image}}|{{.Image}}|{{.Config.User}}|{{json .HostConfig.GroupAdd}}|{{index .Config.Labels "com.docker.compose.project"}}' "$cid"
        pid=$(docker inspect -f '{{.State.Pid}}' "$cid")
        m worker_proc; if [ "${pid:-0}" -gt 0 ]; then grep -E '^(Uid|Gid|Groups):' "/proc/$pid/status"; fi
    fi
fi
if [ -n "$cid" ] && [ "$DEEP" = 1 ] && [ "${pid:-0}" -gt 0 ]; then
    # Both proofs in one process tree in the worker (each `docker exec` costs 0.1-0.2 s on the host).
    # What the worker prints is data: it comes back base64-encoded (it cannot open a section of
    # this probe), its own fields are fenced by this run's random nonce, and its commands run with a
    # clean environment and a PATH of root-owned system dirs (a DAG's ~/.local/bin/id is never run;
    # no docker config, no DOCKER_HOST but the one hostprep gives: DOCKER_URL). Without a docker CLI the
    # Engine API is asked over the socket (or DOCKER_URL).
    nonce=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    # from / (not the image's WorkingDir, which tasks can write), the nonce on stdin, ended after 60 s here
    out=$(printf '%s\n' "$nonce" | timeout -k 5 60 docker exec -i -w / "$cid" /bin/sh -c 'command -v airflow >/dev/null 2>&1 && a=yes || a=no
exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent \
    DOCKER_CONFIG=/nonexistent LC_ALL=C ${4:+DOCKER_HOST=$4} /bin/sh -c "$1" sh "$a" "$2" "$3" "$4" "$5"' sh \
        "$WORKER_SCRIPT" "$SOCK" 'import socket,sys
u = sys.argv[1]
def ask(line):
    if u.startswith("tcp://"):
        h, p = u[6:].rsplit(":", 1); s = socket.create_connection((h, int(p)), 10)
    else:
        s = socket.socket(socket.AF_UNIX); s.connect(u)
    s.sendall((line + " HTTP/1.0\r\nContent-Length: 0\r\n\r\n").encode()); return s.recv(200).decode().split("\r\n")[0]
for line in sys.argv[2:] or ["GET /_ping"]:
    print(ask(line))' "${DOCKER_URL:-}" "$cid" 2>&1)
    rc=$?
    case "$rc" in 124|137) out="hostprep: the in-worker checks in container $cid did not finish within 60 s (docker exec ended by the timeout)
$out" ;; esac
    m worker_exec; echo "$nonce $rc"; printf '%s' "$out" | base64 -w0; echo
fi
guard_checks
}
# Written in one go: sshd then sends a few large packets instead of one per line (less work on both ends).
out=$(probe); printf '%s\n' "$out"
m end
