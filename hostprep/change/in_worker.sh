# in_worker.sh: runs INSIDE a worker container, as its user, in "/" (docker exec -i -w / CID /bin/sh -c
# THIS sh SECONDS SCRIPT ARG...): hostprep's Python SCRIPT with ARGs, isolated from what the worker's
# tasks can change. The tasks run as the same user and can write the image's working directory
# (/opt/airflow), their home and whatever the image's PATH lists there, so:
#  - python3 is the first on the image's PATH whose file and every directory above it only root can
#    change (no task can plant or swap it); none: "@@in-worker no-python" and exit 127;
#  - it runs as `python3 -I` (no script or working directory, no user site, no PYTHON* variables on
#    sys.path; -P too where the interpreter has it), from /, under `env -i` with a fixed PATH of system
#    directories: only the image's AIRFLOW* settings and its DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH
#    (what a task sees) are passed through; no LD_*, PYTHON*, HOME or PATH of the image's;
#  - it ends after SECONDS (`timeout`, where the worker has it; the host's own timeout is the guarantee);
#  - the caller's nonce arrives on stdin (ps shows every argument to every process in the container).
image_path=$PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
secs=$1; shift
# root_only PATH: PATH (the file itself, links followed) and every directory above it are root's, not g/o-writable
root_only() {
    _p=$1
    while :; do
        set -- $(ls -ldLn -- "$_p" 2>/dev/null)
        [ "${3:-}" = 0 ] || return 1
        case "${1:-}" in ?????w*|????????w*|'') return 1 ;; esac
        [ "$_p" != / ] || return 0
        _p=${_p%/*}; [ -n "$_p" ] || _p=/
    done
}
py=
_ifs=$IFS; IFS=:; set -f
for d in $image_path; do
    IFS=$_ifs
    case "$d" in /*) ;; *) continue ;; esac
    [ -x "$d/python3" ] || continue
    real=$(readlink -f -- "$d/python3" 2>/dev/null) || real=
    if root_only "$d/python3" && { [ -z "$real" ] || root_only "$real"; }; then py=$d/python3; break; fi
done
IFS=$_ifs; set +f
[ -n "$py" ] || { echo "@@in-worker no-python"; exit 127; }
n=$#
set -- "$@" env -i PATH="$PATH" HOME=/nonexistent LC_ALL=C.UTF-8
for k in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'); do
    case "$k" in AIRFLOW*|_AIRFLOW*|DOCKER_HOST|DOCKER_TLS_VERIFY|DOCKER_CERT_PATH) ;; *) continue ;; esac
    eval "[ -n \"\${$k+set}\" ] && set -- \"\$@\" \"$k=\${$k}\""
done
if command -v timeout >/dev/null 2>&1; then set -- "$@" timeout -k 5 "$secs"; fi
set -- "$@" "$py" -I
if env -i "$py" -I -P -c '' </dev/null >/dev/null 2>&1; then set -- "$@" -P; fi
set -- "$@" -c
while [ "$n" -gt 0 ]; do set -- "$@" "$1"; shift; n=$((n-1)); done
exec "$@"
