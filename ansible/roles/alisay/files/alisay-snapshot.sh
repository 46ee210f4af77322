#!/bin/bash
# The role's rollback: a copy of every live file the play may change, taken before the first
# live change, and put back if anything after it fails.
#
#   alisay-snapshot.sh save DIR FILE...   copy each FILE that exists (mode, owner kept) into
#                                         DIR, note the ones that do not exist, and the
#                                         units' state
#   alisay-snapshot.sh restore DIR        put every saved FILE back, remove the ones that did
#                                         not exist, daemon-reload, restart the services whose
#                                         files changed (or which are not running), test and
#                                         reload nginx if its site changed; prints what it did
#
# Files are classified by name: *.service, *.service.d/* (units), sites-*/alisay.conf (the
# nginx site), everything else (binary, config, secret, nft table, TLS files) restarts both
# services. Nothing outside the listed files is touched.
set -euo pipefail

cmd=${1:?usage}
dir=${2:?usage}

case $cmd in
save)
    shift 2
    rm -rf "$dir"
    install -d -m 0700 "$dir/files"
    : >"$dir/absent"
    : >"$dir/present"
    for f in "$@"; do
        if [[ -e $f || -L $f ]]; then
            mkdir -p "$dir/files$(dirname "$f")"
            cp -a "$f" "$dir/files$f"
            echo "$f" >>"$dir/present"
        else
            echo "$f" >>"$dir/absent"
        fi
    done
    for u in alisay.service alisay-coturn.service; do
        echo "$u $(systemctl is-active "$u" 2>/dev/null || true)" >>"$dir/units"
    done
    echo "saved $(wc -l <"$dir/present") files of the current deployment"
    ;;
restore)
    [[ -f $dir/units ]] || { echo "no complete snapshot in $dir: nothing was restored" >&2; exit 1; }
    restart_server=0 restart_coturn=0 reload_nginx=0
    changed() {
        case $1 in
        */alisay.service) restart_server=1 ;;
        */alisay-coturn.service | */alisay-coturn.service.d/*) restart_coturn=1 ;;
        */sites-available/alisay.conf | */sites-enabled/alisay.conf) reload_nginx=1 ;;
        *) restart_server=1 restart_coturn=1 ;;
        esac
        echo "restored $1"
    }
    while read -r f; do
        [[ -n $f ]] || continue
        if [[ -L $f && -L $dir/files$f && $(readlink "$f") == "$(readlink "$dir/files$f")" ]]; then
            continue
        fi
        if [[ -f $f && ! -L $f ]] && cmp -s "$f" "$dir/files$f"; then
            continue
        fi
        rm -f "$f"
        cp -a "$dir/files$f" "$f"
        changed "$f"
    done <"$dir/present"
    while read -r f; do
        [[ -n $f ]] || continue
        if [[ -e $f || -L $f ]]; then
            # A unit that did not exist before: stopped and disabled while systemd knows it.
            case $f in */alisay.service | */alisay-coturn.service)
                systemctl disable --now "$(basename "$f")" 2>/dev/null || true ;;
            esac
            rm -f "$f"
            changed "$f"
        fi
    done <"$dir/absent"
    systemctl daemon-reload
    while read -r unit state; do
        want=0
        [[ $unit == alisay.service && $restart_server == 1 ]] && want=1
        [[ $unit == alisay-coturn.service && $restart_coturn == 1 ]] && want=1
        if [[ $state == active ]]; then
            if [[ $want == 1 || $(systemctl is-active "$unit" || true) != active ]]; then
                # A unit that crashed in a loop may have hit its start limit.
                systemctl reset-failed "$unit" 2>/dev/null || true
                systemctl restart "$unit"
                echo "restarted $unit"
            fi
        elif systemctl cat "$unit" >/dev/null 2>&1; then
            systemctl stop "$unit" 2>/dev/null || true
        else
            systemctl disable "$unit" 2>/dev/null || true
            systemctl stop "$unit" 2>/dev/null || true
            systemctl reset-failed "$unit" 2>/dev/null || true
            echo "stopped $unit (there was no deployment before)"
        fi
    done <"$dir/units"
    if [[ $reload_nginx == 1 ]]; then
        nginx -t -q
        systemctl reload nginx.service
        echo "reloaded nginx"
    fi
    ;;
*)
    echo "usage: alisay-snapshot.sh save DIR FILE... | restore DIR" >&2
    exit 64
    ;;
esac
