#!/bin/sh
# vc-host: the host side of vcctl (templates/host/vc-host.sh). vcctl installs it as
# /opt/vehicleconnect/bin/vc-host when it connects and calls it as root over its one SSH
# connection. It holds the mechanisms only: the lock, atomic renames, a hashed receive, the
# units. Every decision (the order, what to prune, what is unfinished, what is healthy) is
# vcctl's; its answers are read in vcctl/src/host/protocol.rs. Secrets are generated here and
# never leave the host.
#
# Layout:  /opt/vehicleconnect/releases/<UTC time>-<sha12>/{vehicleconnect,release.json}
#          /opt/vehicleconnect/current -> releases/...   (switched with one rename)
#          /opt/vehicleconnect/candidate -> releases/... (a new release under check, loopback only)
#          /opt/vehicleconnect/failed/<release>/          (failed releases, set aside)
#          /etc/vehicleconnect/env                        (0600: DATABASE_URL, VC_INGEST_TOKEN)
#
# VC_HOST_ROOT (tests only) puts every path under another directory, so the file steps run
# in a temporary directory without a host.
set -eu
# Out of the login's home, which the postgres user may not enter (psql, pg_dump complain).
cd /
ROOT=${VC_HOST_ROOT:-}
BASE=$ROOT/opt/vehicleconnect
REL=$BASE/releases
FAILED=$BASE/failed
ETC=$ROOT/etc/vehicleconnect
# Root's own directory, not the world-writable /run/lock: nobody else can create, replace
# or hold the lock file.
LOCK_DIR=$ROOT/run/vehicleconnect-deploy
# The audit trail outlives releases and `destroy`: it is the host's history.
AUDIT=$ROOT/var/log/vehicleconnect/audit.log
UNIT=vehicleconnect.service
SOCKET=vehicleconnect.socket
CANDIDATE=vehicleconnect-candidate
DISK_METRIC=vehicleconnect-disk-metric
SSH_SWEEP=vehicleconnect-ssh-sweep
SHIP_LOGS=vehicleconnect-logs
CADDY_ADMIN=/var/lib/caddy/admin.sock
export LC_ALL=C SYSTEMD_PAGER='' SYSTEMD_COLORS=0

die() { echo "vc-host: $*" >&2; exit 1; }
# A release name is <UTC time>-<sha12>: never a path.
check_name() { case $1 in *[!0-9A-Za-z-]*|'') die "bad release name: $1";; esac; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
current() { r=$(readlink "$BASE/current" 2>/dev/null || true); echo "${r##*/}"; }
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
env_value() { sed -n "s|^$1=||p" "$ETC/env" 2>/dev/null || true; }
# The directory holding release $1: releases/ or failed/.
release_dir() {
  check_name "$1"
  if [ -d "$REL/$1" ]; then echo "$REL/$1"; elif [ -d "$FAILED/$1" ]; then echo "$FAILED/$1"; else die "no release $1 on this host"; fi
}

# lock TIMEOUT_S HOLDER: take the deploy lock and hold it until stdin closes, i.e. until the
# vcctl that asked for it ends, however it ends: a killed deploy cannot leave it behind.
lock() {
  mkdir -p "$LOCK_DIR" && chmod 0700 "$LOCK_DIR"
  if [ "$(id -u)" = 0 ]; then chown root:root "$LOCK_DIR"; fi
  exec 9>>"$LOCK_DIR/lock"
  if ! flock -n 9; then
    echo "WAITING $(cat "$LOCK_DIR/holder" 2>/dev/null || echo '{}')"
    flock -w "$1" 9 || { echo "BUSY $(cat "$LOCK_DIR/holder" 2>/dev/null || echo '{}')"; exit 75; }
  fi
  printf '%s\n' "$2" > "$LOCK_DIR/holder"
  echo LOCKED
  cat >/dev/null || true
  rm -f "$LOCK_DIR/holder"
}

# state: one `receipt <json>` line per release and one `failed <json>` per failed one, then
# `current`, `candidate`, `active`, `env` and `arch`.
state() {
  for f in "$REL"/*/release.json; do
    if [ -f "$f" ]; then printf 'receipt %s\n' "$(tr -d '\n' < "$f")"; fi
  done
  for f in "$FAILED"/*/release.json; do
    if [ -f "$f" ]; then printf 'failed %s\n' "$(tr -d '\n' < "$f")"; fi
  done
  echo "current $(current)"
  c=$(readlink "$BASE/candidate" 2>/dev/null || true); echo "candidate ${c##*/}"
  echo "active $(systemctl is-active $UNIT 2>/dev/null || true)"
  echo "env $([ -f "$ETC/env" ] && echo present || echo missing)"
  echo "arch $(uname -m)"
}

# put PATH MODE: install stdin as PATH when it differs; says `changed` or `unchanged`.
put() {
  case $1 in /*) ;; *) die "not an absolute path: $1";; esac
  case $2 in [0-7][0-7][0-7]|0[0-7][0-7][0-7]) ;; *) die "not a mode: $2";; esac
  path=$ROOT$1
  # A missing directory is made 0755; one that exists keeps its mode: /etc/vehicleconnect
  # is 0700, and put never loosens it.
  [ -d "$(dirname "$path")" ] || install -d -m 755 "$(dirname "$path")"
  tmp="$path.vcctl-new"
  rm -f "$tmp"
  # Written under umask 077 whatever the caller's (cloud-init's is 022), then given its mode:
  # a secret is never readable by another user, not even while it is written.
  (umask 077 && cat > "$tmp")
  if cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    if [ "$(stat -c %a "$path")" = "${2#0}" ]; then echo unchanged; else chmod "$2" "$path"; echo changed; fi
  else
    chmod "$2" "$tmp"; mv -f "$tmp" "$path"; echo changed
  fi
}

# packages NAME...: the Debian packages this host's roles need (vcctl decides which). A new
# cloud instance may still be installing them: cloud-init finishes first.
packages() {
  if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1 || true; fi
  missing=""
  for p in "$@"; do installed "$p" || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "installing$missing" >&2
    apt-get update -qq >&2
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
  fi
}

# account: the service's user and directories.
account() {
  id vehicleconnect >/dev/null 2>&1 || useradd --system --home-dir /var/lib/vehicleconnect --shell /usr/sbin/nologin vehicleconnect
  install -d -m 755 "$BASE" "$REL" "$FAILED"
  install -d -m 700 "$ETC"
}

# env INGEST_TOKEN(yes|no): the service's secrets, kept when they exist, else made here.
# Says `changed` when the file changed.
write_env() {
  umask 077
  pw=$(env_value DATABASE_URL | sed -n 's|^postgres://vehicleconnect:\([^@]*\)@.*|\1|p')
  [ -n "$pw" ] || pw=$(secret)
  token=""
  if [ "$1" = yes ]; then token=$(env_value VC_INGEST_TOKEN); [ -n "$token" ] || token=$(secret); fi
  { echo "DATABASE_URL=postgres://vehicleconnect:$pw@127.0.0.1:5432/vehicleconnect"
    [ -z "$token" ] || echo "VC_INGEST_TOKEN=$token"; } > "$ETC/env.new"
  if cmp -s "$ETC/env.new" "$ETC/env"; then rm -f "$ETC/env.new"; echo unchanged; else mv -f "$ETC/env.new" "$ETC/env"; echo changed; fi
}

# database: the role and database of the env file's DATABASE_URL. The password is set by
# psql's \password, which sends PostgreSQL a SCRAM verifier: the plain password is in no
# SQL text, no log and no command line. Set only when it does not log in already.
database() {
  systemctl enable --now postgresql >/dev/null 2>&1 || systemctl start postgresql
  for _ in $(seq 120); do runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vehicleconnect') THEN CREATE ROLE vehicleconnect LOGIN; END IF;
END $$;
SQL
  runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_database WHERE datname = 'vehicleconnect'" | grep -q 1 \
    || runuser -u postgres -- createdb -O vehicleconnect vehicleconnect
  pw=$(env_value DATABASE_URL | sed -n 's|^postgres://vehicleconnect:\([^@]*\)@.*|\1|p')
  [ -n "$pw" ] || die "no database password in $ETC/env: run \`env\` first"
  if PGPASSWORD=$pw PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U vehicleconnect -d vehicleconnect -qAtc 'select 1' >/dev/null 2>&1; then
    return 0
  fi
  # No terminal (setsid): \password reads the new password twice from stdin.
  printf '%s\n%s\n' "$pw" "$pw" | setsid -w runuser -u postgres -- psql -q -c '\password vehicleconnect' >/dev/null 2>&1 \
    || die "could not set the database password"
}

# db-serve ADDRESS APP_ADDRESS...: PostgreSQL of a fleet's db host serves the app hosts: it
# listens on ADDRESS (the host's private address in the stack) and loopback, and admits the vehicleconnect role from the app hosts only, over
# TLS (hostssl; the cluster's certificate, which the app hosts pin: `db-cert`), by SCRAM.
# Restarts PostgreSQL only when what it listens on changed; a new host list is a reload.
db_serve() {
  listen=$1; shift
  case $listen in *[!0-9a-zA-Z.:-]*|'') die "not an address: $listen";; esac
  conf=""
  for d in /etc/postgresql/*/main; do if [ -d "$d" ]; then conf=$d; fi; done
  [ -n "$conf" ] || die "no PostgreSQL cluster configuration under /etc/postgresql"
  install -d -m 755 "$conf/conf.d"
  { echo "# Written by vcctl: the fleet's database, for its app hosts."
    echo "listen_addresses = 'localhost,$listen'"
    echo "ssl = on"
    echo "password_encryption = scram-sha-256"
    # An app host that loses power leaves its sessions open (and the KPI leader's advisory
    # lock held) until TCP notices: probe idle clients, and drop one silent for ~25 s.
    echo "tcp_keepalives_idle = 10"
    echo "tcp_keepalives_interval = 5"
    echo "tcp_keepalives_count = 3"
    # ... and one that stops acknowledging what it was sent (no keepalive runs then).
    echo "tcp_user_timeout = 30000"; } > "$conf/conf.d/vehicleconnect.conf.new"
  restart=no
  if cmp -s "$conf/conf.d/vehicleconnect.conf.new" "$conf/conf.d/vehicleconnect.conf"; then
    rm -f "$conf/conf.d/vehicleconnect.conf.new"
  else
    mv -f "$conf/conf.d/vehicleconnect.conf.new" "$conf/conf.d/vehicleconnect.conf"; restart=yes
  fi
  hba=$conf/pg_hba.conf
  { sed '/^# vcctl begin/,/^# vcctl end/d' "$hba"
    echo "# vcctl begin: the app hosts (written by vcctl, replaced at every up)"
    for a in "$@"; do
      case $a in *[!0-9a-fA-F.:]*|'') die "not an address: $a";; esac
      case $a in *:*) bits=128;; *) bits=32;; esac
      echo "hostssl vehicleconnect vehicleconnect $a/$bits scram-sha-256"
    done
    echo "# vcctl end"; } > "$hba.new"
  if cmp -s "$hba.new" "$hba"; then rm -f "$hba.new"; else chown --reference="$hba" "$hba.new"; chmod 640 "$hba.new"; mv -f "$hba.new" "$hba"; [ $restart = yes ] || systemctl reload postgresql; fi
  if [ $restart = yes ]; then systemctl restart postgresql; fi
  for _ in $(seq 120); do runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "PostgreSQL did not come back after its configuration changed"
}

# db-cert: the certificate PostgreSQL presents (PEM; public), for the app hosts to pin.
db_cert() {
  f=$(runuser -u postgres -- psql -qAtc 'show ssl_cert_file') || die "PostgreSQL does not answer"
  case $f in /*) ;; *) f=$(runuser -u postgres -- psql -qAtc 'show data_directory')/$f;; esac
  grep -q 'BEGIN CERTIFICATE' "$f" 2>/dev/null || die "no certificate at $f (ssl_cert_file)"
  cat "$f"
}

# fleet-secrets: the database password and the ingest token this (db) host keeps for the
# fleet, `PASSWORD TOKEN` on one line, for vcctl to hand to the app hosts over their stdin.
fleet_secrets() {
  pw=$(env_value DATABASE_URL | sed -n 's|^postgres://vehicleconnect:\([^@]*\)@.*|\1|p')
  [ -n "$pw" ] || die "no database password in $ETC/env: run \`env\` first"
  echo "$pw $(env_value VC_INGEST_TOKEN)"
}

# fleet-token: the ingest token of a fleet whose database is external, kept (made once) in
# this (lb) host's env file; with a db host, that host's `env` keeps it instead.
fleet_token() {
  umask 077; install -d -m 700 "$ETC"
  token=$(env_value VC_INGEST_TOKEN)
  if [ -z "$token" ]; then token=$(secret); echo "VC_INGEST_TOKEN=$token" >> "$ETC/env"; fi
  echo "$token"
}

# app-env [URL_SECRET]: a fleet app host's env file, from stdin; with URL_SECRET, plus the
# external database's URL kept in that secret (`vcctl secrets set`), copied on the host (the
# two files quote alike), so the value never leaves it. Says `changed` when the file changed.
app_env() {
  umask 077; install -d -m 700 "$ETC"
  cat > "$ETC/env.new"
  if [ -n "${1:-}" ]; then
    check_secret_name "$1"
    line=$(grep -m1 "^$1=" "$SECRETS" 2>/dev/null) || { rm -f "$ETC/env.new"
      die "no secret $1 on this host, which database.url_secret names: set it with \`vcctl secrets set $1\` (the database's URL, postgres://...), then run \`vcctl up\` again"; }
    case ${line#*=} in '"postgres://'*|'"postgresql://'*) ;; *) rm -f "$ETC/env.new"
      die "secret $1 (database.url_secret) is no PostgreSQL URL: set it to postgres://USER:PASSWORD@HOST:5432/DATABASE";; esac
    printf 'DATABASE_URL=%s\n' "${line#*=}" >> "$ETC/env.new"
  fi
  if cmp -s "$ETC/env.new" "$ETC/env"; then rm -f "$ETC/env.new"; echo unchanged; else mv -f "$ETC/env.new" "$ETC/env"; echo changed; fi
}

# firewall CHANGED(yes|no): load /etc/vehicleconnect/firewall.nft (written by `put`) now and
# at every boot (vehicleconnect-firewall.service); a change is applied atomically.
firewall() {
  systemctl enable vehicleconnect-firewall.service >/dev/null 2>&1
  if [ "$1" = yes ]; then systemctl daemon-reload; systemctl restart vehicleconnect-firewall.service
  else systemctl start vehicleconnect-firewall.service; fi
}

# lb-reload: Caddy of a fleet's lb host takes the configuration `put` wrote. A reload lets
# the requests in flight finish on the upstreams they started on (a drained host's too).
lb_reload() {
  systemctl enable caddy >/dev/null 2>&1 || true
  if systemctl is-active --quiet caddy; then caddy_reload; else systemctl restart caddy; fi
}

# caddy_reload: a reload reads the admin API's address from the new file; a Caddy started
# before its admin API moved to the socket is not listening there yet: restarted, once.
caddy_reload() {
  systemctl reload caddy 2>/dev/null || systemctl restart caddy
}

# retire: this app host left its fleet: the service stopped and disabled, the firewall off.
retire() {
  systemctl disable --now $SOCKET $UNIT $CANDIDATE.socket $CANDIDATE.service vehicleconnect-firewall.service >/dev/null 2>&1 || true
  if command -v nft >/dev/null 2>&1; then nft delete table inet vehicleconnect 2>/dev/null || true; fi
}

# lb-upstreams: the upstreams Caddy proxies to now, from its admin API (its socket, which
# only root and Caddy open; an empty Host, as Caddy asks of a socket's clients), as JSON.
lb_upstreams() {
  if ! systemctl is-active --quiet caddy; then echo '[]'; return 0; fi
  curl -sf -m 5 -H 'Host;' --unix-socket "$CADDY_ADMIN" http://localhost/reverse_proxy/upstreams \
    || die "Caddy's admin API did not answer on $CADDY_ADMIN"
}

# prometheus RESTART(yes|no): its config was written by `put`; restart it when it changed.
prometheus() {
  systemctl enable prometheus >/dev/null 2>&1 || true
  if [ "$1" = yes ]; then systemctl restart prometheus; else systemctl start prometheus; fi
}

# units CHANGED(yes|no): the units were written by `put`; reload them when they changed. A
# changed socket unit (other ports) takes effect only when the socket is restarted.
units() {
  if [ "$1" = yes ]; then
    systemctl daemon-reload
    systemctl enable $SOCKET $UNIT >/dev/null 2>&1
    systemctl restart $SOCKET
  fi
  systemctl start $SOCKET
  # AWS: the data volume's use to CloudWatch (the disk-nearly-full alarm's metric).
  if [ -e /etc/systemd/system/$DISK_METRIC.timer ]; then systemctl enable --now $DISK_METRIC.timer >/dev/null 2>&1; fi
  # AWS: expired on-demand SSH rules closed by the host itself.
  if [ -e /etc/systemd/system/$SSH_SWEEP.timer ]; then systemctl enable --now $SSH_SWEEP.timer >/dev/null 2>&1; fi
  # `scale:`: the service's lines to CloudWatch Logs, which outlive the instance.
  if [ -e /etc/systemd/system/$SHIP_LOGS.service ]; then systemctl enable --now $SHIP_LOGS.service >/dev/null 2>&1; fi
}

# caddy on RELOAD(yes|no) | caddy off: HTTPS in front of the service. Its configuration was
# written by `put`; a change reloads Caddy (no connection dropped, the certificate kept), and
# a deploy never restarts it. `off` stops a Caddy that vcctl configured (a stack that dropped
# `tls:`), so the service's socket can take port 80 back.
caddy() {
  if [ "$1" = off ]; then
    if grep -qs '^# Written by vcctl' /etc/caddy/Caddyfile; then
      systemctl disable --now caddy >/dev/null 2>&1 || true
      rm -f /etc/caddy/Caddyfile /etc/caddy/vcctl-acme-roots.pem
    fi
    return 0
  fi
  systemctl enable caddy >/dev/null 2>&1 || true
  if ! systemctl is-active --quiet caddy; then
    systemctl restart caddy
  elif [ "$2" = yes ]; then
    caddy_reload
  fi
}

# data VOLUME_ID: PostgreSQL's data directory on the stack's data volume (AWS), which outlives
# the instance. Found by its filesystem label once it has one (never by device name, which
# can change between boots); a new, empty volume is found by its id (Nitro: the NVMe serial)
# or as the one attached as sdf (Xen: /dev/xvdf), formatted with the label, and given the
# instance's cluster. A device with any other filesystem is never touched. Grown online when
# the volume was (resize2fs is a no-op otherwise).
DATA_LABEL=vcdata
# The device that has the label now: probed, not from blkid's cache, which nothing updates on
# a host without udev; else each disk's own superblock (a container's devices may carry other
# names than the kernel's, which is all blkid -L knows).
labelled() {
  if blkid -c /dev/null -L $DATA_LABEL 2>/dev/null; then return 0; fi
  for d in /dev/xvd? /dev/sd? /dev/nvme?n1; do
    if [ -b "$d" ] && [ "$(blkid -p -s LABEL -o value "$d" 2>/dev/null)" = $DATA_LABEL ]; then echo "$d"; return 0; fi
  done
  return 1
}
data() {
  if ! labelled >/dev/null 2>&1; then
    dev=$(data_device "$1") || die "the data volume $1 is not attached yet (no device for it)"
    if blkid -p "$dev" >/dev/null 2>&1; then die "$dev holds a filesystem without the $DATA_LABEL label: not touching it"; fi
    echo "formatting the new data volume $1 ($dev)" >&2
    # No discard (a new EBS volume, or a test's loop device, has nothing to discard, and a
    # failed discard fails mkfs); its output goes to stderr, where vcctl shows it on failure.
    mkfs.ext4 -F -E nodiscard -L $DATA_LABEL "$dev" >&2
    [ "$(blkid -p -s LABEL -o value "$dev")" = $DATA_LABEL ] || die "formatting $dev did not leave the $DATA_LABEL label"
  fi
  grep -q "^LABEL=$DATA_LABEL " /etc/fstab \
    || echo "LABEL=$DATA_LABEL /var/lib/postgresql ext4 defaults,nofail 0 2" >> /etc/fstab
  if ! mountpoint -q /var/lib/postgresql; then
    # The clusters themselves (postgresql@15-main), not only the wrapper unit, which returns
    # before they have stopped: nothing may write while the data is copied.
    systemctl stop postgresql 'postgresql@*'
    install -d -m 700 /run/vcctl-data
    # (Mounted there still when an earlier run was interrupted: it goes on from there.)
    dev=$(labelled) || die "no device has the $DATA_LABEL label"
    mountpoint -q /run/vcctl-data || mount "$dev" /run/vcctl-data
    # A new volume takes the instance's cluster, whole (the mark comes last); a kept one
    # keeps its own.
    if [ ! -e /run/vcctl-data/.vcctl-data ]; then
      cp -a /var/lib/postgresql/. /run/vcctl-data/
      touch /run/vcctl-data/.vcctl-data
    fi
    umount /run/vcctl-data
    mount "$dev" /var/lib/postgresql
    systemctl start postgresql
  fi
  if dev=$(labelled); then resize2fs "$dev" >/dev/null 2>&1 || true; fi
}

data_device() {
  serial=$(echo "$1" | tr -d -)
  for d in /dev/disk/by-id/*"$serial"*; do
    if [ -e "$d" ]; then readlink -f "$d"; return 0; fi
  done
  for d in /dev/xvdf /dev/sdf; do
    if [ -b "$d" ]; then echo "$d"; return 0; fi
  done
  return 1
}

# data-release: the service and PostgreSQL stopped, the data volume unmounted, so that it can
# be detached (`vcctl restore`); `data VOLUME_ID` then `start` bring the new one up.
data_release() {
  systemctl stop $SOCKET $UNIT $CANDIDATE.socket $CANDIDATE.service postgresql 'postgresql@*'
  if mountpoint -q /var/lib/postgresql; then umount /var/lib/postgresql; fi
}

# disk-metric STACK: the data volume's use in percent (used / (used + available), as df
# counts it) to CloudWatch, VehicleConnect/STACK DataVolumeUsedPercent with dimension Stack=STACK,
# with the instance role's credentials. Run by vehicleconnect-disk-metric.timer, unprivileged.
# botocore (python3-botocore) signs the call; bounded: 5 s to connect, 10 s to read.
disk_metric() {
  mountpoint -q /var/lib/postgresql || die "no data volume is mounted at /var/lib/postgresql"
  # shellcheck disable=SC2046 # two numbers, split on purpose
  set -- "$1" $(df -B1 --output=used,avail /var/lib/postgresql | tail -n 1)
  python3 - "$@" <<'PY'
import os, sys
import botocore.session
from botocore.config import Config
stack, used, avail = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pct = round(100.0 * used / max(used + avail, 1), 2)
client = botocore.session.get_session().create_client(
    "cloudwatch",
    endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
    config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}),
)
# The stack's own namespace: the instance role may publish in no other.
client.put_metric_data(Namespace=f"VehicleConnect/{stack}", MetricData=[{
    "MetricName": "DataVolumeUsedPercent", "Dimensions": [{"Name": "Stack", "Value": stack}],
    "Value": pct, "Unit": "Percent"}])
print(f"DataVolumeUsedPercent {pct} (stack {stack})")
PY
}

# ship-logs STACK: the service's and the boot script's journal lines to the stack's
# CloudWatch Logs group (/vcctl/STACK), in one stream named for the instance, so they
# outlive it. Long-running (vehicleconnect-logs.service, unprivileged, in the journal's
# group), with the instance role, which may write streams of that group only. Resumes after
# the last line sent (its journal cursor, in $STATE_DIRECTORY), so a restart neither loses
# nor repeats lines. Bounded: batches of at most 1 000 lines or 5 s, each line cut at
# 64 KiB, and while CloudWatch does not answer, the journal keeps the lines, not memory.
ship_logs() {
  python3 - "$1" <<'PY'
import json, os, select, subprocess, sys, time, urllib.request
import botocore.session
from botocore.config import Config
stack = sys.argv[1]
group = f"/vcctl/{stack}"
state = os.environ.get("STATE_DIRECTORY", "/var/lib/vehicleconnect-logs")
cursor_file = os.path.join(state, "cursor")
def instance_id():
    if os.environ.get("VC_INSTANCE_ID"):  # tests: the emulator's instances are not this host
        return os.environ["VC_INSTANCE_ID"]
    imds = "http://169.254.169.254/latest"
    put = urllib.request.Request(f"{imds}/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(put, timeout=5).read().decode()
    get = urllib.request.Request(f"{imds}/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
    return urllib.request.urlopen(get, timeout=5).read().decode()
client = botocore.session.get_session().create_client(
    "logs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
    config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 5, "mode": "standard"}))
stream = instance_id()
try:
    client.create_log_stream(logGroupName=group, logStreamName=stream)
except client.exceptions.ResourceAlreadyExistsException:
    pass
# The service (serving and candidate) and the boot script (logger -t vcctl-boot).
cmd = ["journalctl", "-f", "-o", "json", "--no-pager", "_SYSTEMD_UNIT=vehicleconnect.service", "+",
       "_SYSTEMD_UNIT=vehicleconnect-candidate.service", "+", "SYSLOG_IDENTIFIER=vcctl-boot"]
try:
    cmd.insert(1, "--after-cursor=" + open(cursor_file).read().strip())
    resumed = True
except OSError:
    # Never shipped: everything the journal holds (a new instance's journal is its boot).
    cmd.insert(1, "--lines=all")
    resumed = False
journal = subprocess.Popen(cmd, stdout=subprocess.PIPE)
batch, first, cursor = [], None, None
def message(e):
    m = e.get("MESSAGE", "")
    if isinstance(m, list):  # bytes that are not UTF-8
        m = bytes(m).decode("utf-8", "replace")
    # The service's unit; else the identifier (the boot script's lines come from cloud-init's
    # unit, or whatever ran it).
    unit = e.get("_SYSTEMD_UNIT", "")
    who = unit.removesuffix(".service") if unit.startswith("vehicleconnect") else e.get("SYSLOG_IDENTIFIER", unit)
    return f"{who}: {m}"[:65536] or " "
def flush():
    global batch, first
    if not batch:
        return
    events = sorted(batch, key=lambda x: x["timestamp"])
    while True:
        try:
            client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
            break
        except Exception as err:  # CloudWatch away: the lines wait, in order
            print(f"ship-logs: {err}; retrying in 10 s", file=sys.stderr, flush=True)
            time.sleep(10)
    with open(cursor_file + ".new", "w") as f:
        f.write(cursor)
    os.replace(cursor_file + ".new", cursor_file)
    batch, first = [], None
# Read from the descriptor, not a buffered file: select() knows nothing of lines a buffer
# already holds, which would wait there for the next entry.
fd, pending = journal.stdout.fileno(), b""
while True:
    ready, _, _ = select.select([fd], [], [], 1.0)
    if ready:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            flush()
            code = journal.wait()
            if resumed and cursor is None and code != 0:
                # The journal no longer has that line (vacuumed): start again from this boot.
                os.remove(cursor_file)
            sys.exit(f"ship-logs: journalctl ended ({code})")
        *lines, pending = (pending + chunk).split(b"\n")
        for line in filter(None, lines):
            e = json.loads(line)
            batch.append({"timestamp": int(e["__REALTIME_TIMESTAMP"]) // 1000, "message": message(e)})
            cursor, first = e["__CURSOR"], first or time.monotonic()
    if batch and (len(batch) >= 1000 or time.monotonic() - first >= 5):
        flush()
PY
}

# ssh-sweep STACK: revoke the temporary SSH rules of the stack's security groups whose
# leases have all ended, or end further ahead than one lease and a minute (a skewed clock, a
# hand-written tag): the same rule as vcctl's (on_demand/lease.rs). Run every minute by
# vehicleconnect-ssh-sweep.timer, unprivileged, with the instance role, which may revoke only
# rules tagged for STACK and `vcctl:temporary`. Bounded: 5 s to connect, 10 s to read.
ssh_sweep() {
  python3 - "$1" <<'PY'
import datetime, os, sys
import botocore.session
from botocore.config import Config
stack = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
furthest = now + datetime.timedelta(minutes=16)
client = botocore.session.get_session().create_client(
    "ec2",
    endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
    config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}),
)
def holds(end):
    try:
        end = datetime.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return False
    return now < end <= furthest
groups = client.describe_security_groups(Filters=[{"Name": "tag:vcctl:stack", "Values": [stack]}])["SecurityGroups"]
for group in groups:
    gid = group["GroupId"]
    rules = client.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    for r in rules:
        tags = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
        if r.get("IsEgress") or "vcctl:temporary" not in tags or tags.get("vcctl:stack") != stack:
            continue
        if any(holds(v) for k, v in tags.items() if k.startswith("vcctl:lease:")):
            continue
        client.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=[r["SecurityGroupRuleId"]])
        print(f"revoked {r['SecurityGroupRuleId']} on {gid}: its leases ended")
PY
}

# instance-token: a `scale:` instance's ingest token, from stdin (empty: the service takes
# none), set in its env file beside what its boot wrote; a deploy runs it, so turning the
# token on or off reaches running instances. Says `changed` when the file changed.
instance_token() {
  token=$(head -c 256)
  case $token in *[!0-9a-zA-Z_-]*) die "an ingest token is letters, digits, - and _";; esac
  [ -f "$ETC/env" ] || die "no $ETC/env: this instance's boot did not finish"
  (umask 077 && { grep -v '^VC_INGEST_TOKEN=' "$ETC/env" || true; [ -z "$token" ] || printf 'VC_INGEST_TOKEN=%s\n' "$token"; } > "$ETC/env.new")
  if cmp -s "$ETC/env.new" "$ETC/env"; then rm -f "$ETC/env.new"; echo unchanged; else mv -f "$ETC/env.new" "$ETC/env"; echo changed; fi
}

# start: the service's socket and unit (after `data-release`).
start() {
  systemctl start $SOCKET $UNIT
}

# data-usage: the data volume's size and use in bytes, `SIZE USED` (nothing without one).
data_usage() {
  if mountpoint -q /var/lib/postgresql; then df -B1 --output=size,used /var/lib/postgresql | tail -n 1; fi
}

# db-dump: the stack's database as a pg_dump custom-format archive, on stdout.
# On a `scale:` group's instance the database is elsewhere (RDS, verified by its CA): dumped
# as the service's own role, which owns it, over verified TLS; on a host, its own PostgreSQL.
db_dump() {
  ca=$(env_value VC_DATABASE_CA)
  if [ -n "$ca" ]; then
    rds_login && pg_dump -Fc
  else
    runuser -u postgres -- pg_dump -Fc -d vehicleconnect
  fi
}

# db-restore: a pg_dump custom-format archive on stdin, restored into a new database while
# the service keeps serving; only a whole restore is swapped in, with the service stopped
# around the swap. The database it replaces is kept as vehicleconnect_previous (the one kept
# before that is dropped).
db_restore() {
  pg() { runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 "$@" >/dev/null; }
  pg -c 'DROP DATABASE IF EXISTS vehicleconnect_restore' -c 'CREATE DATABASE vehicleconnect_restore OWNER vehicleconnect'
  if ! runuser -u postgres -- pg_restore --no-owner --role=vehicleconnect --exit-on-error -d vehicleconnect_restore; then
    pg -c 'DROP DATABASE IF EXISTS vehicleconnect_restore'
    die "the archive did not restore; the stack's database is as it was"
  fi
  systemctl stop $SOCKET $UNIT $CANDIDATE.socket $CANDIDATE.service
  pg -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'vehicleconnect'" \
     -c 'DROP DATABASE IF EXISTS vehicleconnect_previous' \
     -c 'ALTER DATABASE vehicleconnect RENAME TO vehicleconnect_previous' \
     -c 'ALTER DATABASE vehicleconnect_restore RENAME TO vehicleconnect'
  systemctl start $SOCKET $UNIT
}

# rds_login: libpq's variables for the env file's DATABASE_URL (a `scale:` instance's RDS,
# over TLS verified by its CA), exported: the password never goes into a command's argv.
rds_login() {
  ca=$(env_value VC_DATABASE_CA)
  [ -n "$ca" ] || die "this host's database is its own, not RDS (no VC_DATABASE_CA in $ETC/env)"
  login=$(env_value DATABASE_URL | python3 -c '
import shlex, sys, urllib.parse as u
p = u.urlsplit(sys.stdin.read().strip())
for k, v in (("PGHOST", p.hostname), ("PGPORT", str(p.port or 5432)), ("PGUSER", u.unquote(p.username or "")),
             ("PGPASSWORD", u.unquote(p.password or "")), ("PGDATABASE", p.path.lstrip("/"))):
    print("export %s=%s" % (k, shlex.quote(v or "")))') || die "DATABASE_URL in $ETC/env is not a PostgreSQL URL"
  eval "$login"
  export PGSSLMODE=verify-full PGSSLROOTCERT="$ca" PGCONNECT_TIMEOUT=10
}

check_db_name() { case $1 in [a-z]*) ;; *) die "bad database name: $1";; esac
  case $1 in *[!a-z0-9_]*) die "bad database name: $1";; esac; }

# db-restore-into NAME: on a `scale:` instance, a pg_dump custom-format archive on stdin
# restored into a new database NAME on RDS beside the serving one, made and owned by the
# service's own role (CREATEDB, granted at boot); the serving database is not touched. vcctl
# then points the group at NAME, instance by instance. A failed restore drops NAME again.
db_restore_into() {
  check_db_name "$1"; rds_login
  serving=$PGDATABASE
  [ "$1" != "$serving" ] || die "database $1 is the one this instance serves from"
  psql -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$1\"" >/dev/null || die "could not create database $1 on RDS"
  if ! PGDATABASE=$1 pg_restore --no-owner --no-acl --exit-on-error -d "$1"; then
    psql -q -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
    die "the archive did not restore; the stack's database is as it was"
  fi
  echo "restored $1"
}

# db-drop NAME: on a `scale:` instance, drops database NAME on RDS (one the stack kept after
# a restore), never the one this instance serves from.
db_drop() {
  check_db_name "$1"; rds_login
  [ "$1" != "$PGDATABASE" ] || die "database $1 is the one this instance serves from"
  psql -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
  echo "dropped $1"
}

# The service's secrets (`vcctl secrets`): /etc/vehicleconnect/secrets, 0600 root, read by
# the units as an EnvironmentFile. Each is a comment with its name and when it was set, then
# NAME="value" with \ " ` $ escaped (systemd's double-quote rules). Values never leave the host.
SECRETS=$ETC/secrets
check_secret_name() { case $1 in ''|[!A-Z_]*|*[!A-Z0-9_]*) die "bad secret name: $1";; esac; }

# secret-set NAME: the value on stdin (one line, at most 64 KiB).
secret_set() {
  check_secret_name "$1"; umask 077; install -d -m 700 "$ETC"
  value=$(head -c 65536 | tr -d '\n')
  escaped=$(printf '%s' "$value" | sed 's/[\\"`$]/\\&/g')
  { secret_others "$1"
    printf '# %s set %s\n%s="%s"\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$escaped"; } > "$SECRETS.new"
  mv -f "$SECRETS.new" "$SECRETS"
}

# The secrets file without NAME (its comment and its line).
secret_others() {
  [ -f "$SECRETS" ] || return 0
  awk -v n="$1" '($1 == "#" && $2 == n && $3 == "set") || index($0, n "=") == 1 { next } { print }' "$SECRETS"
}

# secret-unset NAME
secret_unset() {
  check_secret_name "$1"; umask 077
  if [ ! -f "$SECRETS" ] || ! grep -q "^$1=" "$SECRETS"; then die "no secret named $1"; fi
  secret_others "$1" > "$SECRETS.new"; mv -f "$SECRETS.new" "$SECRETS"
}

# secret-list: NAME TIME, one per line; never a value.
secret_list() {
  if [ -f "$SECRETS" ]; then sed -n 's/^# \([A-Z0-9_]*\) set \(.*\)$/\1 \2/p' "$SECRETS"; fi
}

# audit-append: one JSON object on stdin (vcctl's entry), appended with the host's time first.
audit_append() {
  install -d -m 750 "$(dirname "$AUDIT")"
  line=$(head -c 8192 | tr -d '\r\n')
  case $line in '{'*'}') ;; *) die "audit: not one JSON object";; esac
  printf '{"time":"%s",%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${line#?}" >> "$AUDIT"
  chmod 640 "$AUDIT"
}

# audit-show N: the last N entries.
audit_show() {
  case $1 in *[!0-9]*|'') die "audit-show: not a count: $1";; esac
  if [ -f "$AUDIT" ]; then tail -n "$1" "$AUDIT"; fi
}

# receive SHA256 NAME RECEIPT_JSON: the binary on stdin becomes releases/NAME, or nothing.
receive() {
  check_name "$2"
  rm -rf "$REL"/.*.partial
  part="$REL/.$2.partial"; mkdir -p "$part"
  cat > "$part/vehicleconnect"
  got=$(sha256sum "$part/vehicleconnect" | cut -d' ' -f1)
  [ "$got" = "$1" ] || { rm -rf "$part"; die "upload damaged: sha256 $got, expected $1"; }
  chmod 755 "$part/vehicleconnect"
  printf '%s\n' "$3" > "$part/release.json"
  mv -T "$part" "$REL/$2"
}

# candidate NAME: run NAME beside the serving release, on 127.0.0.1 only, to check it before
# it takes any traffic. Its socket starts it at the first connection.
candidate() {
  check_name "$1"
  [ -x "$REL/$1/vehicleconnect" ] || die "no release $1 on this host"
  candidate_stop
  ln -sfn "releases/$1" "$BASE/candidate.new"
  mv -T "$BASE/candidate.new" "$BASE/candidate"
  echo "since $(date +%s)"
  systemctl start $CANDIDATE.socket
}

candidate_stop() {
  systemctl stop $CANDIDATE.socket $CANDIDATE.service 2>/dev/null || true
  systemctl reset-failed $CANDIDATE.service $CANDIDATE.socket 2>/dev/null || true
  rm -f "$BASE/candidate"
}

# switch NAME: point `current` at NAME with one rename, then restart the service. The socket
# stays open meanwhile: connections wait in its queue for the new process.
switch() {
  check_name "$1"
  [ -x "$REL/$1/vehicleconnect" ] || die "no release $1 on this host"
  ln -sfn "releases/$1" "$BASE/current.new"
  mv -T "$BASE/current.new" "$BASE/current"
  systemctl reset-failed $UNIT 2>/dev/null || true
  echo "since $(date +%s)"
  systemctl restart $UNIT || true
}

# probe PORT UNIT: the service's own answer on the host, and what systemd says of it.
probe() {
  body=$(curl -s -m 2 -w '\nhttp %{http_code}' "http://127.0.0.1:$1/api/status") && rc=0 || rc=$?
  echo "curl $rc"
  printf '%s\n' "$body" | sed -n '$!s/^/body /p;$p'
  systemctl show "$2.service" -p ActiveState -p SubState -p NRestarts -p ExecMainStatus -p MainPID
  echo "SocketState=$(systemctl is-active "$2.socket" 2>/dev/null || true)"
}

# diagnose SINCE_EPOCH UNIT: systemctl status and the journal since the start.
diagnose() {
  systemctl status "$2.service" --no-pager -l -n 0 2>&1 || true
  echo "--- journal"
  journalctl -u "$2.service" --no-pager -o short-iso -n 30 --since "@$1" 2>&1 || true
}

# finish NAME: the release's final receipt, from stdin.
finish() {
  dir=$(release_dir "$1")
  cat > "$dir/release.json.new"
  mv -f "$dir/release.json.new" "$dir/release.json"
}

# set-aside NAME: move a failed release out of releases/ into failed/.
set_aside() {
  check_name "$1"
  [ "$1" != "$(current)" ] || die "release $1 serves: it cannot be set aside"
  [ -d "$REL/$1" ] || die "no release $1 on this host"
  install -d -m 755 "$FAILED"
  rm -rf "${FAILED:?}/$1"
  mv -T "$REL/$1" "$FAILED/$1"
}

# remove NAME...: delete releases (from releases/ or failed/), never the current one.
remove() {
  for name in "$@"; do
    check_name "$name"
    [ "$name" != "$(current)" ] || die "release $name serves: it cannot be removed"
    rm -rf "${REL:?}/$name" "${FAILED:?}/$name"
    echo "removed $name"
  done
}

# logs LINES follow|once text|json
logs() {
  format=short-iso; [ "${3:-}" = json ] && format=json
  if [ "${2:-}" = follow ]; then exec journalctl -u $UNIT --no-pager -o "$format" -n "$1" -f; fi
  exec journalctl -u $UNIT --no-pager -o "$format" -n "$1"
}

# destroy keep-data|delete-data: remove the service; PostgreSQL and Prometheus stay.
destroy() {
  systemctl disable --now $SOCKET $UNIT $CANDIDATE.socket $CANDIDATE.service $DISK_METRIC.timer $SSH_SWEEP.timer \
    $SHIP_LOGS.service >/dev/null 2>&1 || true
  rm -f /etc/systemd/system/$UNIT /etc/systemd/system/$SOCKET /etc/systemd/system/$CANDIDATE.* /etc/systemd/system/$DISK_METRIC.* \
    /etc/systemd/system/$SSH_SWEEP.* /etc/systemd/system/$SHIP_LOGS.service
  systemctl daemon-reload
  caddy off
  if [ "$1" = delete-data ]; then
    # FORCE: sessions left by app hosts that died or left (the service is stopped on all).
    runuser -u postgres -- psql -q -c 'DROP DATABASE IF EXISTS vehicleconnect WITH (FORCE)' >/dev/null
    runuser -u postgres -- psql -q -c 'DROP ROLE IF EXISTS vehicleconnect' >/dev/null
    rm -rf /var/lib/vehicleconnect "$ETC"
  fi
  rm -rf "$REL" "$FAILED" "$BASE/current" "$BASE/candidate"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
  lock) lock "$1" "$2" ;;
  state) state ;;
  put) put "$1" "$2" ;;
  packages) packages "$@" ;;
  account) account ;;
  env) write_env "$1" ;;
  database) database ;;
  db-serve) db_serve "$@" ;;
  fleet-secrets) fleet_secrets ;;
  fleet-token) fleet_token ;;
  app-env) app_env "${1:-}" ;;
  db-cert) db_cert ;;
  firewall) firewall "$1" ;;
  lb-reload) lb_reload ;;
  lb-upstreams) lb_upstreams ;;
  retire) retire ;;
  prometheus) prometheus "$1" ;;
  units) units "$1" ;;
  caddy) caddy "$1" "${2:-no}" ;;
  audit-append) audit_append ;;
  data) data "$1" ;;
  data-usage) data_usage ;;
  disk-metric) disk_metric "$1" ;;
  ssh-sweep) ssh_sweep "$1" ;;
  ship-logs) ship_logs "$1" ;;
  instance-token) instance_token ;;
  data-release) data_release ;;
  start) start ;;
  db-dump) db_dump ;;
  db-restore) db_restore ;;
  db-restore-into) db_restore_into "$1" ;;
  db-drop) db_drop "$1" ;;
  secret-set) secret_set "$1" ;;
  secret-unset) secret_unset "$1" ;;
  secret-list) secret_list ;;
  audit-show) audit_show "$1" ;;
  token) env_value VC_INGEST_TOKEN ;;
  receive) receive "$1" "$2" "$3" ;;
  candidate) candidate "$1" ;;
  candidate-stop) candidate_stop ;;
  switch) switch "$1" ;;
  probe) probe "$1" "$2" ;;
  diagnose) diagnose "$1" "$2" ;;
  finish) finish "$1" ;;
  set-aside) set_aside "$1" ;;
  remove) remove "$@" ;;
  logs) logs "$1" "${2:-}" "${3:-}" ;;
  destroy) destroy "$1" ;;
  *) die "unknown command: $cmd" ;;
esac
