# hostprep's launcher: starts a run on the host detached from this SSH session, then follows it.
# Prepended: safe.sh, lock.sh (proc_start, say, put). A run is a folder $STATE_DIR/runs/<RUN_ID>/ (the
# host's journal of it): run.sh (the interpreter with its inputs; root-only, it may hold .env bytes),
# log (everything it prints), pid ("<pid> <start ticks> <mode>"), exit (its exit code, written last).
# The run is its own session and process group (setsid), or its own systemd unit when systemd is PID 1
# (outside the SSH session's scope, which logind may kill; KillMode=process: what the run started, e.g.
# a compose up, is never killed halfway when the run itself ends): a dropped connection or a killed controller
# does not stop it. Following prints the log from its first byte, so a controller that reconnects
# ("follow") reads exactly what an uninterrupted one would have.
# Inputs: MODE launch | follow; STATE_DIR; RUN_ID; RUN_B64 + RUN_SIZE + RUN_MODE (launch: the run's
# script, which gets STATE_DIR, RUN_ID and RUN_DIR from here, in its environment, and its mode)
set -u
umask 077
d="$STATE_DIR/runs/$RUN_ID"

launch() {
    mkdir -p "$STATE_DIR/runs" && chmod 700 "$STATE_DIR" "$STATE_DIR/runs" && mkdir "$d" \
        || { say "cause cannot create $d"; exit 70; }
    printf '%s' "$RUN_B64" | base64 -d | put "$d/run.sh" "$RUN_SIZE" || exit 72
    : > "$d/log" || exit 70
    # a file, not a command line: systemd-run would expand its "$" signs
    printf '%s\n' "$RUN" | put "$d/start.sh" $(( ${#RUN} + 1 )) || exit 72
    prune
    RUN_DIR=$d; RUN_MODE=${RUN_MODE:-?}; export STATE_DIR RUN_ID RUN_DIR RUN_MODE
    if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemd-run >/dev/null 2>&1; then
        systemd-run --unit "hostprep-run-$RUN_ID" --collect --quiet --property=KillMode=process --setenv=HOME=/root \
            --setenv=STATE_DIR="$STATE_DIR" --setenv=RUN_DIR="$d" --setenv=RUN_ID="$RUN_ID" --setenv=RUN_MODE="$RUN_MODE" \
            /bin/sh "$d/start.sh" "$d" </dev/null >/dev/null 2>&1 && return 0
    fi
    setsid -f /bin/sh "$d/start.sh" "$d" </dev/null >/dev/null 2>&1
}
# over: DIR's run ended (its exit code), or died (its process gone, or it never started in 10 minutes)
over() {
    [ -e "$1/exit" ] && return 0
    if read -r _p _s _ < "$1/pid" 2>/dev/null; then [ "$(proc_start "$_p")" != "$_s" ]
    else [ -n "$(find "$1" -maxdepth 0 -mmin +10 2>/dev/null)" ]; fi
}
# The journal keeps the last 20 runs that are over. A run that died (killed, a reboot) never wrote its exit code
# nor removed its run.sh (the .env bytes it carried): its log and pid stay (`hostprep status` reads them, and the
# next run recovers from the lock and the snapshot, not from these), its scripts go now.
prune() {
    # a put cut by a crash leaves its hidden temp file (a snapshot's holds .env bytes): gone after 10 minutes
    find "$STATE_DIR" -maxdepth 3 -type f -name '.*.??????????' -mmin +10 -delete 2>/dev/null
    for old in $(ls -1 "$STATE_DIR/runs" | sort); do
        o="$STATE_DIR/runs/$old"
        [ "$o" != "$d" ] && over "$o" && rm -f -- "$o/run.sh" "$o/start.sh"
    done
    ls -1 "$STATE_DIR/runs" | sort | head -n -20 | while read -r old; do
        [ "$STATE_DIR/runs/$old" != "$d" ] && over "$STATE_DIR/runs/$old" && rm -rf -- "$STATE_DIR/runs/$old"; done
}
# the run: "<pid> <start ticks> <mode>" to pid, the script with its output to log, its exit code to exit
RUN='d=$1; printf "%s %s %s\n" $$ "$(sed "s/^.*) //" /proc/$$/stat | cut -d" " -f20)" "$RUN_MODE" > "$d/pid"
/bin/sh "$d/run.sh" >>"$d/log" 2>&1 </dev/null; rc=$?
rm -f "$d/run.sh" "$d/start.sh"; printf "%s\n" $rc > "$d/exit.new" && sync "$d/exit.new" 2>/dev/null; mv -f "$d/exit.new" "$d/exit"'

# the run's log as it grows, until the run has ended; then its exit code
follow() {
    [ -d "$d" ] || { say "no-run $RUN_ID"; exit 69; }
    i=0
    until [ -s "$d/pid" ] || [ -e "$d/exit" ]; do
        i=$((i+1)); [ "$i" -le 100 ] || { say "runner-died $RUN_ID never started"; exit 69; }
        sleep 0.1
    done
    pid=$(cut -d' ' -f1 "$d/pid" 2>/dev/null); start=$(cut -d' ' -f2 "$d/pid" 2>/dev/null)
    off=0
    while :; do
        # ended first, then read: whatever it wrote before it ended is in the file by now
        ended=; if [ -e "$d/exit" ] || [ "$(proc_start "${pid:-0}")" != "$start" ]; then ended=1; fi
        size=$(stat -c %s "$d/log" 2>/dev/null || echo 0)
        if [ "$size" -gt "$off" ]; then tail -c +$((off + 1)) "$d/log" | head -c $((size - off)); off=$size; fi
        [ -z "$ended" ] || break
        sleep 0.2
    done
    [ -e "$d/exit" ] || { say "runner-died $RUN_ID ended without an exit code"; exit 69; }
    exit "$(cat "$d/exit")"
}

case "$MODE" in
launch) launch; follow ;;
follow) follow ;;
esac
