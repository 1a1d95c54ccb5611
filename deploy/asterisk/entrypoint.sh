#!/bin/sh
# Hotline ACD — Asterisk container entrypoint.
#
# 1. Renders the shipped templates (asterisk_conf/*.conf, baked into the image) into
#    $AST_ETC_DIR: every @@NAME@@ placeholder is replaced by the environment variable
#    NAME (defaults below; the directory placeholders are set here).
# 2. Copies the generated includes (pjsip_acd.conf, queues_acd.conf, extensions_acd.conf,
#    written by `acd asterisk-config -o` into the shared volume $ACD_GENERATED) next to them.
# 3. exec asterisk -f (PID 1 is Asterisk; SIGTERM stops it).
#
# `entrypoint.sh render` does 1 and 2 only (tests/unit/test_deploy.py runs it on the host).
# POSIX sh + sed: there is no python3 in this image.
set -eu

# Placeholders taken from the environment (name=default; empty default: required).
# tests/unit/test_deploy.py checks that these plus DIR_PLACEHOLDERS cover asterisk_conf/.
PLACEHOLDERS="BIND_ADDR AMI_USER AMI_SECRET AMI_PORT AMI_PERMIT SIP_PORT RTP_START RTP_END ACD_AGI_URLS ACD_RETRIES ACD_RETRY_PAUSE FALLBACK_TIMEOUT SERVER_NAME"
# Placeholders this script sets itself (the Debian package's directories).
DIR_PLACEHOLDERS="AST_ETC_DIR AST_MOD_DIR AST_DATA_DIR AST_VAR_DIR AST_DB_DIR AST_SPOOL_DIR AST_RUN_DIR AST_LOG_DIR AST_CACHE_DIR"

: "${BIND_ADDR:=0.0.0.0}"
: "${AMI_USER:=acd}"
: "${AMI_SECRET:=${ACD_AMI_SECRET:-}}"
: "${AMI_PORT:=5038}"
: "${AMI_PERMIT:=}"
: "${SIP_PORT:=5060}"
: "${RTP_START:=10000}"
: "${RTP_END:=10099}"
: "${ACD_AGI_URLS:=}"
: "${ACD_RETRIES:=8}"
: "${ACD_RETRY_PAUSE:=2}"
: "${FALLBACK_TIMEOUT:=300}"
: "${SERVER_NAME:=main}"

: "${ACD_TEMPLATES:=/usr/share/hotline-acd/asterisk_conf}"
: "${ACD_GENERATED:=/etc/acd/asterisk}"
: "${ACD_GENERATED_WAIT:=60}"
: "${AST_ETC_DIR:=/etc/asterisk}"
: "${AST_DATA_DIR:=/usr/share/asterisk}"
: "${AST_VAR_DIR:=/var/lib/asterisk}"
: "${AST_DB_DIR:=/var/lib/asterisk}"
: "${AST_SPOOL_DIR:=/var/spool/asterisk}"
: "${AST_RUN_DIR:=/var/run/asterisk}"
: "${AST_LOG_DIR:=/var/log/asterisk}"
: "${AST_CACHE_DIR:=/var/cache/asterisk}"
if [ -z "${AST_MOD_DIR:-}" ]; then
    AST_MOD_DIR=/usr/lib/asterisk/modules
    for d in /usr/lib/*/asterisk/modules; do
        if [ -d "$d" ]; then AST_MOD_DIR=$d; break; fi
    done
fi

die() { echo "asterisk-entrypoint: $*" >&2; exit 1; }

for name in AMI_SECRET AMI_PERMIT ACD_AGI_URLS; do
    eval "val=\${$name}"
    [ -n "$val" ] || die "$name is not set (AMI_SECRET may also come from ACD_AMI_SECRET)"
done

# One sed script: s|@@NAME@@|value|g per placeholder, the value escaped for sed
# (\, & and the | delimiter). A value with a newline is refused.
script=$(mktemp)
trap 'rm -f "$script"' EXIT
for name in $PLACEHOLDERS $DIR_PLACEHOLDERS; do
    eval "val=\${$name}"
    case $val in
        *"
"*) die "the value of $name contains a newline" ;;
    esac
    esc=$(printf '%s\n' "$val" | sed -e 's/[\\&|]/\\&/g')
    printf 's|@@%s@@|%s|g\n' "$name" "$esc" >>"$script"
done

[ -d "$ACD_TEMPLATES" ] || die "no templates in $ACD_TEMPLATES"
mkdir -p "$AST_ETC_DIR"
for tpl in "$ACD_TEMPLATES"/*.conf; do
    out="$AST_ETC_DIR/$(basename "$tpl")"
    sed -f "$script" "$tpl" >"$out.tmp"
    left=$(grep -o '@@[A-Za-z0-9_]*@@' "$out.tmp" | sort -u | tr '\n' ' ' || true)
    if [ -n "$left" ]; then
        rm -f "$out.tmp"
        die "$(basename "$tpl"): no value for placeholder(s) $left"
    fi
    mv "$out.tmp" "$out"
done

# The generated includes: wait for the one-shot `acd asterisk-config` run to write them.
waited=0
for inc in pjsip_acd.conf queues_acd.conf extensions_acd.conf; do
    while [ ! -f "$ACD_GENERATED/$inc" ]; do
        [ "$waited" -lt "$ACD_GENERATED_WAIT" ] \
            || die "$ACD_GENERATED/$inc missing: run \`acd asterisk-config -o $ACD_GENERATED\`"
        sleep 1
        waited=$((waited + 1))
    done
    cp "$ACD_GENERATED/$inc" "$AST_ETC_DIR/$inc"
done

if [ "${1:-}" = "render" ]; then
    exit 0
fi
for d in "$AST_RUN_DIR" "$AST_LOG_DIR/cdr-csv" "$AST_SPOOL_DIR" "$AST_VAR_DIR/keys" \
         "$AST_CACHE_DIR"; do
    mkdir -p "$d"
done
exec /usr/sbin/asterisk -f -C "$AST_ETC_DIR/asterisk.conf" "$@"
