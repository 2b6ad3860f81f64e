# drain.sh: before a service that runs Airflow tasks is recreated, let its running tasks finish.
# Sourced by apply.sh (after the lock, before the snapshot: a drain that times out changes nothing).
#   DRAIN_SVCS     the services about to be recreated; those whose container runs a Celery worker
#                  (its command is `celery worker`) are drained
#   DRAIN_TIMEOUT  seconds to wait for their running tasks (and at most 120 s for a worker to answer)
#   FORCE=1        do not wait: name what is running (it will be killed), then go on
#   IN_WORKER      hostprep/change/in_worker.sh: how Python runs inside the worker (isolated: `python3 -I`,
#                  `env -i`, from /), the worker's python3 chosen where no task can plant it
# How: inside the worker, with Celery's own control API (the app the worker itself runs): learn its
# queues, write them down, cancel its consumers (it takes no new work), then ask it for its active and
# reserved tasks until there are none. On timeout its consumers are added back and the apply stops
# before its snapshot. Every `docker exec` has a timeout on this side (a python3 that hangs in the
# worker cannot hold the host lock). What the worker prints is data: only the lines fenced by this
# exec's nonce (sent on stdin, never an argument) are kept, and they travel base64-encoded.
# A drained worker is written down in $STATE_DIR/drained ("CID NODE QUEUE...", root-only, replaced
# atomically) with its queues BEFORE any consumer is cancelled, and until it is recreated or resumed,
# so a run killed in between (SIGKILL, OOM: its traps never ran) leaves a note that the next run
# holding the lock acts on (resume_stale).
DRAIN_PY='import json, re, sys, time
nonce = sys.stdin.readline().strip()
if not re.fullmatch(r"[0-9a-f]{24}", nonce):
    sys.exit(2)
mode, timeout, node = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def out(kind, **kw):
    print("@@drain-%s %s %s" % (nonce, kind, json.dumps(kw)), flush=True)
try:
    from airflow.providers.celery.executors.celery_executor import app
except Exception as exc:
    out("error", why="cannot load the Celery app with python3 -I: %s" % type(exc).__name__); sys.exit(3)
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
    names = [x["name"] for x in q.get(node, []) if isinstance(x, dict) and "name" in x]
    return [n for n in names if re.fullmatch(r"[A-Za-z0-9_.:-]{1,200}", str(n))]
def resume(qs):
    for q in qs:
        ctl.add_consumer(q, destination=[node], reply=True, timeout=5)
if mode == "resume":
    resume(sys.argv[4:]); out("resumed", queues=sys.argv[4:]); sys.exit(0)
if mode == "cancel":   # the queues the host wrote down first; then wait for the running tasks
    end, total, qs = time.monotonic() + timeout, int(sys.argv[4]), sys.argv[5:]
    for q in qs:
        ctl.cancel_consumer(q, destination=[node], reply=True, timeout=5)
    tasks, waited = ask() or [], time.monotonic()
    while tasks and time.monotonic() < end:
        time.sleep(2); tasks = ask() or []
    if tasks:
        resume(qs); out("timeout", tasks=tasks, queues=qs, timeout=total); sys.exit(5)
    out("drained", queues=qs, seconds=round(time.monotonic() - waited, 1)); sys.exit(0)
answer_by = time.monotonic() + min(timeout, 120)   # a starting worker answers in seconds; a broken one never
tasks = ask()
while tasks is None and time.monotonic() < answer_by:
    time.sleep(2); tasks = ask()
if tasks is None:
    out("silent", timeout=min(timeout, 120)); sys.exit(4)
if mode == "list":
    out("running", tasks=tasks); sys.exit(0)
print("@@drain-%s queues %s" % (nonce, " ".join(queues())), flush=True); sys.exit(0)'

drained=        # lines "CID NODE QUEUE...": the workers this run drained and has not recreated yet
DRAINED_FILE="$STATE_DIR/drained"
# note_drained CID [NODE QUEUE...]: CID's line in the note replaced by this one (none: CID's line dropped).
# Written (temp, fsync, rename, fsync of the folder) before the worker stops consuming; the note goes
# once no line is left. 1 when it could not be written (then nothing may be cancelled).
note_drained() {
    _all=$( { grep -v "^$1 " "$DRAINED_FILE" 2>/dev/null; [ $# -lt 2 ] || echo "$*"; } | sed '/^$/d')
    if [ -z "$_all" ]; then rm -f "$DRAINED_FILE"; sync -- "$STATE_DIR" 2>/dev/null; return 0; fi
    rm -f "$DRAINED_FILE.new"
    ( printf '%s\n' "$_all" | put "$DRAINED_FILE.new" $(( ${#_all} + 1 )) ) && sync -- "$DRAINED_FILE.new" &&
        mv -f "$DRAINED_FILE.new" "$DRAINED_FILE" && sync -- "$STATE_DIR"
}
# drain_py CID MODE SECONDS NODE [ARGS...]: the drain script in the worker (isolated: $IN_WORKER), ended
# after SECONDS + 60 by `timeout` here; only the lines fenced by its nonce (on stdin) are re-said, encoded.
# A "queues" line is printed for the caller (drain), which writes it down.
drain_py() {
    _cid=$1 _mode=$2 _secs=$3 _node=$4; shift 4
    _nonce=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    _out=$(printf '%s\n' "$_nonce" | timeout -k 5 $((_secs + 60)) docker exec -i -w / "$_cid" /bin/sh -c "$IN_WORKER" sh \
               $((_secs + 45)) "$DRAIN_PY" "$_mode" "$_secs" "$_node" "$@" 2>/dev/null)
    _rc=$?
    case "$_rc" in 124|137)
        say "drain $_node error $(printf '{"why": "python3 in the worker (container %.12s) did not finish within %s s (docker exec timed out)"}' \
            "$_cid" $((_secs + 60)) | base64 -w0)"; return 124 ;;
    esac
    printf '%s\n' "$_out" | while IFS= read -r _l; do
        case "$_l" in
        "@@in-worker no-python") say "drain $_node error $(printf '{"why": "no python3 on the PATH of the worker image that only root can change"}' | base64 -w0)" ;;
        "@@drain-$_nonce queues"*) _q=""
            for q in ${_l#"@@drain-$_nonce queues"}; do case "$q" in *[!A-Za-z0-9_.:-]*) ;; *) _q="$_q $q" ;; esac; done
            echo "queues$_q" ;;
        "@@drain-$_nonce "*) _l=${_l#"@@drain-$_nonce "}
            say "drain $_node ${_l%% *} $(printf '%s' "${_l#* }" | base64 -w0)" ;;
        esac
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
        t0=$(date +%s)
        secs=$DRAIN_TIMEOUT; [ "$secs" -le 120 ] || secs=120   # a starting worker answers in seconds; a broken one never
        # its queues first, written down with it; only then is any consumer cancelled
        said=$(drain_py "$cid" queues "$secs" "celery@$hn"); rc=$?
        printf '%s\n' "$said" | grep -v '^queues' | sed '/^$/d'
        qs=$(printf '%s\n' "$said" | sed -n 's/^queues//p' | head -n 1)
        if [ "$rc" != 0 ] || ! printf '%s\n' "$said" | grep -q '^queues'; then return 79; fi
        note_drained "$cid" "celery@$hn" $qs || { say "drain celery@$hn error $(printf '{"why": "cannot write %s"}' "$DRAINED_FILE" | base64 -w0)"; return 79; }
        drained=$(cat "$DRAINED_FILE" 2>/dev/null)
        left=$(( DRAIN_TIMEOUT - ($(date +%s) - t0) )); [ "$left" -gt 0 ] || left=0
        drain_py "$cid" cancel "$left" "celery@$hn" "$DRAIN_TIMEOUT" $qs; rc=$?   # cancel, then wait
        case "$rc" in
        0) ;;
        5) siblings; return 78 ;;   # it took its consumers back itself; the others are given theirs on the way out
        *) return 79 ;;   # whatever it cancelled is given back on the way out (finish: undrain)
        esac
    done
}
# undrain: the workers this run drained and did not recreate take work again
undrain() {
    [ -n "$drained" ] || return 0
    printf '%s\n' "$drained" | while read -r _c _n _q; do
        [ -n "$_c" ] || continue
        [ "$(docker inspect -f '{{.State.Running}}' "$_c" 2>/dev/null)" = true ] && drain_py "$_c" resume 30 "$_n" $_q
    done
    drained=; rm -f "$DRAINED_FILE"
}
# resume_stale: under the lock, the workers a dead run drained (its note outlived it) take work again;
# one whose queues the run never learnt is only named (adding some queue it never had would be worse)
resume_stale() {
    [ -f "$DRAINED_FILE" ] || return 0
    _all=$(cat "$DRAINED_FILE" 2>/dev/null); rm -f "$DRAINED_FILE"; drained=
    _ifs=$IFS; IFS='
'
    for _line in $_all; do
        IFS=$_ifs; set -- $_line
        case "$_line" in *[!A-Za-z0-9@_.:\ -]*) continue ;; esac   # not a note this script wrote
        case "${1:-}" in ''|*[!0-9a-f]*) continue ;; esac
        case "${2:-}" in celery@?*) ;; *) continue ;; esac
        if [ $# -gt 2 ]; then
            note "a dead run left $2 drained; its consumers (${_line#* * }) are added back"
            say "drain-stale resumed $2"; drained="$drained$_line
"
        else
            note "a dead run was draining $2 when it died; its queues are not known"; say "drain-stale unknown $2"
        fi
    done
    IFS=$_ifs
    undrain
}

# containers running on the host outside any Compose project (what the tasks started), for the report
siblings() {
    docker ps --format '{{.Names}} {{.Image}} {{.Label "com.docker.compose.project"}}' </dev/null 2>/dev/null |
        awk 'NF == 2 { printf "%s (%s) ", $1, $2 }' | { read -r s; [ -z "${s:-}" ] || say "siblings $s"; }
}
