# hostprep's no-follow path walk, shared by probe.sh and apply.sh (prepended to both).
# Root acts inside directories that other people own (the Compose project, bind folders): a link
# planted there must never redirect what root reads, writes, chowns or chmods.
#
# enter DIR: cd into DIR one component at a time, so every later step acts on names inside a
# directory this shell holds (renaming a parent afterwards changes nothing). A symlink is followed
# only inside a directory that only root can change (owner 0, not group/other-writable, e.g.
# /var/run -> /run), and then by reading it and walking its target the same way. In any other
# directory a symlink is refused, and a component swapped between the check and the cd is caught
# by comparing device:inode. Returns 0 inside DIR; 1 with $unsafe set (refused) or empty (missing).
# Afterwards $trusted is 1 when DIR itself can only be changed by root.
enter() {
    unsafe=; trusted=; _to=$1; _rest=${1#/}; _hops=0
    cd / || return 1
    while [ -n "$_rest" ]; do
        _c=${_rest%%/*}
        case "$_rest" in */*) _rest=${_rest#*/} ;; *) _rest= ;; esac
        case "$_c" in ''|.) continue ;; esac
        root_only . && _tr=1 || _tr=
        if [ -L "$_c" ]; then
            [ -n "$_tr" ] || { unsafe="$_to: $_c is a symlink"; return 1; }
            _hops=$((_hops+1))
            [ "$_hops" -le 40 ] || { unsafe="$_to: too many levels of symlinks"; return 1; }
            _t=$(readlink -- "$_c") || return 1
            case "$_t" in /*) cd / || return 1; _rest="${_t#/}/$_rest" ;; *) _rest="$_t/$_rest" ;; esac
            continue
        fi
        if [ ! -d "$_c" ]; then
            [ -e "$_c" ] && unsafe="$_to: $_c is not a directory"
            return 1
        fi
        if [ -n "$_tr" ]; then
            cd -P -- "$_c" || return 1
        else
            _id=$(stat -c '%d:%i' -- "$_c") && cd -P -- "$_c" && [ "$(stat -c '%d:%i' .)" = "$_id" ] \
                || { unsafe="$_to: $_c changed while hostprep entered it"; return 1; }
        fi
    done
    root_only . && trusted=1
    return 0
}
# root_only DIR: only root can add, remove or rename entries in DIR.
root_only() {
    _st=$(stat -c '%u %a' -- "$1") || return 1
    [ "${_st%% *}" = 0 ] && [ $(( 0${_st#* } & 022 )) = 0 ]
}
# kind NAME (in the current directory): file | dir | missing | symlink | other; never follows NAME.
# kind_of NAME sets $kind to the same, without the fork a $(kind NAME) costs.
kind_of() {
    if [ -L "$1" ]; then kind=symlink
    elif [ -f "$1" ]; then kind=file
    elif [ -d "$1" ]; then kind=dir
    elif [ -e "$1" ]; then kind=other
    else kind=missing; fi
}
kind() { kind_of "$1"; echo "$kind"; }
# read_nofollow NAME: the bytes of a regular file, never through a link (O_NOFOLLOW) and never
# blocking on a FIFO swapped in after the check (O_NONBLOCK).
read_nofollow() { dd if="$1" iflag=nofollow,nonblock status=none; }
