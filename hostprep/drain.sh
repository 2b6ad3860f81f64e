# drain.sh: before a service that runs Airflow tasks is recreated, let its running tasks finish.
# Sourced by apply.sh (after the lock, before the snapshot: a drain that times out changes nothing).
#   DRAIN_SVCS     the services about to be recreated; those whose container runs a Celery worker
#                  (its command is `celery worker`) are drained
#   DRAIN_TIMEOUT  seconds to wait for their running tasks (and at most 120 s for a worker to answer)
#   FORCE=1        do not wait: name what is running (it will be killed), then go on
# How: inside the worker, with Celery's own control API (the app the worker itself runs): cancel
# its consumers (it takes no new work), then ask it for its active and reserved tasks until there are
# none. On timeout its consumers are added back and the apply stops before its snapshot. What the
# worker prints is data: only this run's nonce-fenced lines are kept, and they travel base64-encoded.
DRAIN_PY='import json, sys, time
mode, timeout, node, nonce = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def out(kind, **kw):
    print("@@drain-%s %s %s" % (nonce, kind, json.dumps(kw)), flush=True)
try:
    from airflow.providers.celery.executors.celery_executor import app
except Exception as exc:
    out("error", why="cannot load the Celery app: %s" % type(exc).__name__); sys.exit(3)
ctl = app.control
def describe(t):
    d = {"id": str(t.get("id", ""))[:64], "name": str(t.get("name", ""))[:80]}
    try:
        ti = json.loads(t["args"][0])["ti"]
        d.update(dag_id=str(ti.get("dag_id", ""))[:250], task_id=str(ti.get("task_id", ""))[:250],
                 run_id=str(ti.get("run_id", ""))[:250])
    except Exception:
        pass
    return d
def ask():
    i = ctl.inspect(destination=[node], timeout=5)
    act, res = i.active(), i.reserved()
    if act is None or node not in act:
        return None
    return [describe(t) for t in act.get(node, []) + ((res or {}).get(node) or [])]
def queues():
    q = ctl.inspect(destination=[node], timeout=5).active_queues() or {}
    return [x["name"] for x in q.get(node, []) if isinstance(x, dict) and "name" in x]
if mode == "resume":
    for q in sys.argv[5:]:
        ctl.add_consumer(q, destination=[node], reply=True, timeout=5)
    out("resumed", queues=sys.argv[5:]); sys.exit(0)
end = time.monotonic() + timeout
answer_by = time.monotonic() + min(timeout, 120)   # a starting worker answers in seconds; a broken one never
tasks = ask()
while tasks is None and time.monotonic() < answer_by:
    time.sleep(2); tasks = ask()
if tasks is None:
    out("silent", timeout=min(timeout, 120)); sys.exit(4)
if mode == "list":
    out("running", tasks=tasks); sys.exit(0)
qs = queues()
for q in qs:
    ctl.cancel_consumer(q, destination=[node], reply=True, timeout=5)
out("cancelled", queues=qs, tasks=tasks)
waited = time.monotonic()
while tasks and time.monotonic() < end:
    time.sleep(2); tasks = ask() or []
if tasks:
    for q in qs:
        ctl.add_consumer(q, destination=[node], reply=True, timeout=5)
    out("timeout", tasks=tasks, queues=qs, timeout=timeout); sys.exit(5)
out("drained", queues=qs, seconds=round(time.monotonic() - waited, 1)); sys.exit(0)'

drained=        # "CID NODE QUEUE..." of a worker this run drained and has not recreated yet
# drain_py CID MODE ARGS...: the drain script in the worker; only its fenced lines, re-said encoded
drain_py() {
    _cid=$1; shift
    _nonce=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    _out=$(docker exec "$_cid" python3 -c "$DRAIN_PY" "$1" "$2" "$3" "$_nonce" "$@" </dev/null 2>/dev/null); _rc=$?
    printf '%s\n' "$_out" | while IFS= read -r _l; do
        case "$_l" in "@@drain-$_nonce "*) _l=${_l#"@@drain-$_nonce "}
            say "drain $3 ${_l%% *} $(printf '%s' "${_l#* }" | base64 -w0)" ;; esac
    done
    return $_rc
}
drain() {
    [ -n "${DRAIN_SVCS:-}" ] || return 0
    for svc in $DRAIN_SVCS; do
        cid=$(docker ps -q --no-trunc --filter "label=com.docker.compose.project.working_dir=$PROJ" \
              --filter "label=com.docker.compose.service=$svc" </dev/null 2>/dev/null | head -n1)
        [ -n "$cid" ] || continue
        case "$(docker inspect -f '{{json .Config.Cmd}}' "$cid" 2>/dev/null)" in
            *'"celery"'*'"worker"'*|*'celery worker'*) ;;
            *) continue ;;
        esac
        hn=$(docker inspect -f '{{.Config.Hostname}}' "$cid" 2>/dev/null)
        case "$hn" in ''|*[!A-Za-z0-9.-]*) say "drain celery@unknown error $(printf '{"why": "unusable hostname"}' | base64 -w0)"; return 79 ;; esac
        if [ "${FORCE:-0}" = 1 ]; then drain_py "$cid" list 30 "celery@$hn"; siblings; continue; fi
        out=$(drain_py "$cid" drain "$DRAIN_TIMEOUT" "celery@$hn"); rc=$?
        printf '%s\n' "$out"
        case "$rc" in
        0) qs=$(printf '%s\n' "$out" | sed -n 's/^@@hostprep:drain [^ ]* cancelled \(.*\)$/\1/p' | base64 -d 2>/dev/null |
                sed -n 's/.*"queues": \[\([^]]*\)\].*/\1/p' | tr -d '",' )
           drained="$cid celery@$hn"
           for q in $qs; do case "$q" in *[!A-Za-z0-9_.:-]*) ;; *) drained="$drained $q" ;; esac; done ;;
        5) siblings; return 78 ;;
        *) return 79 ;;
        esac
    done
}
# undrain: a drained worker that this run did not recreate takes work again
undrain() {
    [ -n "$drained" ] || return 0
    set -- $drained; _c=$1; _n=$2; shift 2
    [ "$(docker inspect -f '{{.State.Running}}' "$_c" 2>/dev/null)" = true ] && drain_py "$_c" resume 30 "$_n" "$@"
    drained=
}
# containers running on the host outside any Compose project (what the tasks started), for the report
siblings() {
    docker ps --format '{{.Names}} {{.Image}} {{.Label "com.docker.compose.project"}}' </dev/null 2>/dev/null |
        awk 'NF == 2 { printf "%s (%s) ", $1, $2 }' | { read -r s; [ -z "${s:-}" ] || say "siblings $s"; }
}
