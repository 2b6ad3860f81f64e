#!/bin/sh
# As the upstream image's entrypoint: pick the bind address, render the template, run haproxy in the
# foreground as master-worker.
set -e
ulimit -n 10000 2>/dev/null || true
case $(printf '%s' "$DISABLE_IPV6" | tr '[:upper:]' '[:lower:]') in
    1|true|yes) bind=":2375" ;;
    *) bind="[::]:2375 v4v6" ;;
esac
sed "s/\${BIND_CONFIG}/$bind/g" /usr/local/etc/haproxy/haproxy.cfg.template > /tmp/haproxy.cfg
if [ "${1#-}" != "$1" ]; then set -- haproxy "$@"; fi
if [ "$1" = haproxy ]; then shift; set -- haproxy -W -db "$@"; fi
exec "$@"
