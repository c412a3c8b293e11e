#!/bin/sh
# start-load-test.sh <replay-file> <rate>
#
# Iago's launcher, as Seldon's Iago image had it, running seldon-load's engine instead of a
# JVM: replay the file (looping it) at <rate> requests/s with a slow-start Poisson ramp
# (1 req/s to <rate> over 240 s), with the admin port on 9994 (/stats.json, /graph/, ...).
# Iago ran until killed; this runs for SELDON_LOAD_DURATION (1h by default) or until killed
# (SIGTERM/SIGINT end the run and keep its result).
#
# Environment (all optional):
#   SELDON_LOAD_URL          the target (default http://seldon-server:80, Iago's victim)
#   SELDON_LOAD_PROTOCOL     legacy | v1 | v2, how answers are judged (default legacy)
#   SELDON_LOAD_MODEL        model name for v2 (default iris)
#   SELDON_LOAD_ARRIVAL      slow-start-poisson (default) | poisson | constant | ramp
#   SELDON_LOAD_RAMP         ramp length (default 240s for slow-start-poisson)
#   SELDON_LOAD_RAMP_FROM    rate at the start of the ramp (default 1)
#   SELDON_LOAD_DURATION     run length (default 1h)
#   SELDON_LOAD_WARMUP       sent but not counted, before the duration (default 0)
#   SELDON_LOAD_CONNECTIONS  keep-alive connections (default 64)
#   SELDON_LOAD_TIMEOUT      per-request timeout (default 30s, Iago's requestTimeoutInMs)
#   SELDON_LOAD_SEED         schedule seed
#   SELDON_LOAD_HEADERS      extra headers, one Name:value per line
#   SELDON_LOAD_ADMIN_PORT   admin port (default 9994); SELDON_LOAD_ADMIN_HOST (0.0.0.0)
#   SELDON_LOAD_OUT          write the result JSON here when the run ends
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: start-load-test.sh <replay-file> <rate>" >&2
    exit 2
fi
replay=$1
rate=$2
if [ ! -r "$replay" ]; then
    echo "start-load-test.sh: cannot read the replay file $replay" >&2
    exit 2
fi

arrival=${SELDON_LOAD_ARRIVAL:-slow-start-poisson}
set -- run \
    --url "${SELDON_LOAD_URL:-http://seldon-server:80}" \
    --replay "$replay" \
    --rate "$rate" \
    --arrival "$arrival" \
    --protocol "${SELDON_LOAD_PROTOCOL:-legacy}" \
    --model "${SELDON_LOAD_MODEL:-iris}" \
    --duration "${SELDON_LOAD_DURATION:-1h}" \
    --warmup "${SELDON_LOAD_WARMUP:-0}" \
    --connections "${SELDON_LOAD_CONNECTIONS:-64}" \
    --timeout "${SELDON_LOAD_TIMEOUT:-30s}" \
    --admin-port "${SELDON_LOAD_ADMIN_PORT:-9994}" \
    --admin-host "${SELDON_LOAD_ADMIN_HOST:-0.0.0.0}"
if [ -n "${SELDON_LOAD_RAMP:-}" ]; then
    set -- "$@" --ramp "$SELDON_LOAD_RAMP"
elif [ "$arrival" = "slow-start-poisson" ]; then
    set -- "$@" --ramp 240s
fi
if [ -n "${SELDON_LOAD_RAMP_FROM:-}" ]; then
    set -- "$@" --ramp-from "$SELDON_LOAD_RAMP_FROM"
fi
if [ -n "${SELDON_LOAD_SEED:-}" ]; then
    set -- "$@" --seed "$SELDON_LOAD_SEED"
fi
if [ -n "${SELDON_LOAD_OUT:-}" ]; then
    set -- "$@" --out "$SELDON_LOAD_OUT"
fi
if [ -n "${SELDON_LOAD_HEADERS:-}" ]; then
    set -f
    old_ifs=$IFS
    IFS='
'
    for header in $SELDON_LOAD_HEADERS; do
        set -- "$@" --header "$header"
    done
    IFS=$old_ifs
    set +f
fi

exec "${SELDON_LOAD_BIN:-seldon-load}" "$@"
