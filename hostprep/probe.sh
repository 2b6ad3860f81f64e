# hostprep fact probe: everything hostprep needs to know about a host, in one exec.
# Inputs (shell variables, quoted by the transport): SOCK PROJ WORKER_SVC BIND_DIRS DEEP VERSIONS STATE_DIR FILES
#   DEEP=1      also run `id` and `docker ps` inside the worker, in one docker exec (the proof; ~0.2 s on the host)
#   VERSIONS=1  also ask dockerd and Compose for their versions (0.1-0.5 s)
# Output (written at once): sections "@@hostprep:<key>" followed by their raw lines; parsed by hostprep.facts.
m() { printf '\n@@hostprep:%s\n' "$1"; }
probe() {
m os; ( . /etc/os-release 2>/dev/null && printf '%s' "$PRETTY_NAME" )
m docker_group; getent group docker
m socket; if [ -e "$SOCK" ]; then stat -L -c '%f %u %g %U %G' -- "$SOCK"; ls -ldL -- "$SOCK" | cut -c1-11; fi
m dockerd
pid=$(cat /var/run/docker.pid 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo running; elif pgrep -x dockerd >/dev/null 2>&1; then echo running; fi
m compose   # found by presence; versions only when asked
v2=; for d in /usr/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins /usr/local/lib/docker/cli-plugins \
              /usr/local/libexec/docker/cli-plugins "$HOME/.docker/cli-plugins"; do
    [ -x "$d/docker-compose" ] && { v2=1; break; }; done
if [ -n "$v2" ]; then echo "v2 $([ "$VERSIONS" = 1 ] && docker compose version --short 2>/dev/null)"
elif command -v docker-compose >/dev/null 2>&1; then echo "v1 $([ "$VERSIONS" = 1 ] && docker-compose version --short 2>/dev/null)"; fi
m docker_version; if [ "$VERSIONS" = 1 ]; then docker version --format '{{.Server.Version}}' 2>/dev/null; fi
m project; if [ -d "$PROJ" ]; then echo exists; fi
for f in $FILES; do
    m "file:$f"
    if [ -f "$PROJ/$f" ]; then stat -c '%a %u %g %s' -- "$PROJ/$f"; base64 -w0 -- "$PROJ/$f"; echo; fi
done
m bind_dirs
printf '%s' "$BIND_DIRS" | while read -r d p; do   # "name path" lines: the paths come from hostprep.layout
    if [ -d "$p" ]; then stat -c "$d %u %g %a" -- "$p"; else echo "$d missing"; fi
done
m record; cat "$STATE_DIR/state.json" 2>/dev/null
cid=; pid=0
if [ -d /var/lib/docker/containers ]; then
    # dockerd's own record of the containers: no docker CLI (each call costs ~50 ms on the host)
    m worker_files
    for f in $(grep -l -F "\"com.docker.compose.service\":\"$WORKER_SVC\"" /var/lib/docker/containers/*/config.v2.json 2>/dev/null); do
        grep -q -F "\"com.docker.compose.project.working_dir\":\"$PROJ\"" "$f" || continue
        p=$(grep -o '"Pid":[0-9]*' "$f" | head -n1 | cut -d: -f2)
        printf 'config %s\nhostconfig %s\nproc %s\n' "$(base64 -w0 "$f")" "$(base64 -w0 "${f%/config.v2.json}/hostconfig.json")" \
            "$(grep -E '^(Uid|Gid|Groups):' "/proc/${p:-0}/status" 2>/dev/null | tr '\t\n' '  ')"
        if [ -z "$cid" ] && [ "${p:-0}" -gt 0 ]; then d=${f%/config.v2.json}; cid=${d##*/}; pid=$p; fi
    done
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
if [ -n "$cid" ]; then
    if [ "$DEEP" = 1 ] && [ "${pid:-0}" -gt 0 ]; then
        # Both proofs in one process tree in the worker (each `docker exec` costs 0.1-0.2 s on the host).
        # Without a docker CLI in the worker, the Engine API is asked over the socket instead.
        out=$(docker exec "$cid" sh -c 'printf "@@hostprep:worker_id\n"; id; rc=$?
command -v airflow >/dev/null 2>&1 && echo airflow=yes; echo "rc=$rc"; printf "\n@@hostprep:worker_docker_ps\n"
if command -v docker >/dev/null 2>&1; then o=$(docker ps -q 2>&1); rc=$?; echo method=docker-cli
else o=$(python3 -c "$2" "$1" 2>&1); rc=$?; echo method=engine-api; fi
printf "%s\n" "$o" | tail -n 3; echo "rc=$rc"' sh "$SOCK" 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); print(s.recv(200).decode().split("\r\n")[0])' 2>&1)
        rc=$?
        case "$out" in
        @@hostprep:worker_id*) printf '\n%s\n' "$out" ;;
        *) m worker_id; printf '%s\n' "$out"; echo "rc=$rc"; m worker_docker_ps; printf '%s\n' "$out" | tail -n 3; echo "rc=$rc" ;;
        esac
    fi
fi
}
# Written in one go: sshd then sends a few large packets instead of one per line (less work on both ends).
out=$(probe); printf '%s\n' "$out"
m end
