#!/bin/sh
# vc-host: the host side of `vcctl deploy` (templates/host/vc-host.sh). vcctl installs it as
# /opt/vehicleconnect/bin/vc-host at the start of every run and calls it as root over its
# one SSH connection. Each subcommand is one small, idempotent step; vcctl decides the order,
# checks the health and reports. Secrets are generated here and never leave the host.
#
# Layout:  /opt/vehicleconnect/releases/<UTC time>-<sha12>/{vehicleconnect,release.json}
#          /opt/vehicleconnect/current -> releases/...   (switched with one rename)
#          /opt/vehicleconnect/candidate -> releases/... (a new release under check, loopback only)
#          /opt/vehicleconnect/failed/<release>/          (failed releases, moved aside)
#          /etc/vehicleconnect/env                        (0600: DATABASE_URL, VC_INGEST_TOKEN)
set -eu
BASE=/opt/vehicleconnect
REL=$BASE/releases
FAILED=$BASE/failed
ETC=/etc/vehicleconnect
# Root's own directory, not the world-writable /run/lock: nobody else can create, replace
# or hold the lock file.
LOCK_DIR=/run/vehicleconnect-deploy
LOCK=$LOCK_DIR/lock
HOLDER=$LOCK_DIR/holder
UNIT=vehicleconnect.service
SOCKET=vehicleconnect.socket
CANDIDATE=vehicleconnect-candidate
export LC_ALL=C SYSTEMD_PAGER= SYSTEMD_COLORS=0

die() { echo "vc-host: $*" >&2; exit 1; }
# A release name is <UTC time>-<sha12>: never a path.
check_name() { case $1 in *[!0-9A-Za-z-]*|'') die "bad release name: $1";; esac; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
current() { r=$(readlink "$BASE/current" 2>/dev/null || true); echo "${r##*/}"; }

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in

lock) # lock TIMEOUT_S HOLDER: take the deploy lock and hold it until stdin closes, i.e. until
      # the vcctl that asked for it ends, however it ends: a killed deploy cannot leave it behind.
  mkdir -p "$LOCK_DIR" && chown root:root "$LOCK_DIR" && chmod 0700 "$LOCK_DIR"
  exec 9>>"$LOCK"
  if ! flock -n 9; then
    echo "WAITING $(cat "$HOLDER" 2>/dev/null || echo '{}')"
    flock -w "$1" 9 || { echo "BUSY $(cat "$HOLDER" 2>/dev/null || echo '{}')"; exit 75; }
  fi
  printf '%s\n' "$2" > "$HOLDER"
  echo LOCKED
  cat >/dev/null || true
  rm -f "$HOLDER"
  ;;

state) # What is installed: one `receipt <json>` line per release, then `current`, `active`, `env`.
  for f in "$REL"/*/release.json; do
    [ -f "$f" ] && printf 'receipt %s\n' "$(tr -d '\n' < "$f")"
  done
  echo "current $(current)"
  c=$(readlink "$BASE/candidate" 2>/dev/null || true); echo "candidate ${c##*/}"
  echo "active $(systemctl is-active $UNIT 2>/dev/null || true)"
  echo "env $([ -f $ETC/env ] && echo present || echo missing)"
  echo "arch $(uname -m)"
  ;;

put) # put PATH MODE: install stdin as PATH when it differs; says `changed` or `unchanged`.
  dir=$(dirname "$1"); install -d -m 755 "$dir"
  tmp="$1.vcctl-new"; cat > "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; echo unchanged; else chmod "$2" "$tmp"; mv -f "$tmp" "$1"; echo changed; fi
  ;;

prepare) # prepare INGEST_TOKEN(yes|no) PROMETHEUS_CHANGED(yes|no) UNITS_CHANGED(yes|no)
  # A new cloud instance may still be installing packages: let cloud-init finish first.
  if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1 || true; fi
  missing=""
  for p in postgresql prometheus curl; do installed $p || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "installing$missing" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
  fi
  id vehicleconnect >/dev/null 2>&1 || useradd --system --home-dir /var/lib/vehicleconnect --shell /usr/sbin/nologin vehicleconnect
  install -d -m 755 "$BASE" "$REL" "$FAILED"
  install -d -m 700 "$ETC"
  systemctl enable --now postgresql >/dev/null 2>&1 || systemctl start postgresql
  for _ in $(seq 120); do runuser -u postgres -- psql -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
  umask 077
  # The database password: kept from the env file when there is one, else made here.
  pw=$(sed -n 's|^DATABASE_URL=postgres://vehicleconnect:\([^@]*\)@.*|\1|p' $ETC/env 2>/dev/null || true)
  [ -n "$pw" ] || pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # Through stdin, so the password is on no command line.
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vehicleconnect') THEN CREATE ROLE vehicleconnect LOGIN; END IF;
END \$\$;
ALTER ROLE vehicleconnect PASSWORD '$pw';
SQL
  runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_database WHERE datname = 'vehicleconnect'" | grep -q 1 \
    || runuser -u postgres -- createdb -O vehicleconnect vehicleconnect
  token=$(sed -n 's/^VC_INGEST_TOKEN=//p' $ETC/env 2>/dev/null || true)
  if [ "$1" = yes ] && [ -z "$token" ]; then token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'); fi
  [ "$1" = yes ] || token=""
  { echo "DATABASE_URL=postgres://vehicleconnect:$pw@127.0.0.1:5432/vehicleconnect"
    [ -z "$token" ] || echo "VC_INGEST_TOKEN=$token"; } > $ETC/env.new
  if cmp -s $ETC/env.new $ETC/env; then rm -f $ETC/env.new; else mv -f $ETC/env.new $ETC/env; echo "env changed"; fi
  umask 022
  systemctl enable prometheus >/dev/null 2>&1 || true
  if [ "$2" = yes ]; then systemctl restart prometheus; else systemctl start prometheus; fi
  if [ "$3" = yes ]; then
    systemctl daemon-reload
    systemctl enable $SOCKET $UNIT >/dev/null 2>&1
    # A changed socket unit (other ports) takes effect only when the socket is restarted.
    systemctl restart $SOCKET
  fi
  systemctl start $SOCKET
  ;;

token) # the ingest token, for `vcctl simulate` (read by vcctl, never printed by it)
  sed -n 's/^VC_INGEST_TOKEN=//p' $ETC/env 2>/dev/null || true
  ;;

receive) # receive SHA256 NAME RECEIPT_JSON: the binary on stdin becomes releases/NAME, or nothing.
  check_name "$2"
  rm -rf "$REL"/.*.partial
  part="$REL/.$2.partial"; mkdir -p "$part"
  cat > "$part/vehicleconnect"
  got=$(sha256sum "$part/vehicleconnect" | cut -d' ' -f1)
  [ "$got" = "$1" ] || { rm -rf "$part"; die "upload damaged: sha256 $got, expected $1"; }
  chmod 755 "$part/vehicleconnect"
  printf '%s\n' "$3" > "$part/release.json"
  mv -T "$part" "$REL/$2"
  ;;

candidate) # candidate NAME: run NAME beside the serving release, on 127.0.0.1 only, to check it
           # before it takes any traffic. Its socket starts it at the first connection.
  check_name "$1"
  [ -x "$REL/$1/vehicleconnect" ] || die "no release $1 on this host"
  systemctl stop $CANDIDATE.socket $CANDIDATE.service 2>/dev/null || true
  systemctl reset-failed $CANDIDATE.service 2>/dev/null || true
  ln -sfn "releases/$1" "$BASE/candidate.new"
  mv -T "$BASE/candidate.new" "$BASE/candidate"
  echo "since $(date +%s)"
  systemctl start $CANDIDATE.socket
  ;;

candidate-stop)
  systemctl stop $CANDIDATE.socket $CANDIDATE.service 2>/dev/null || true
  systemctl reset-failed $CANDIDATE.service $CANDIDATE.socket 2>/dev/null || true
  rm -f "$BASE/candidate"
  ;;

cleanup) # after a deploy that was killed: stop its candidate, drop its unfinished releases
  "$0" candidate-stop
  cur=$(current)
  for d in $(ls -1 "$REL" 2>/dev/null); do
    [ "$d" = "$cur" ] && continue
    if grep -q '"verdict": *"pending"' "$REL/$d/release.json" 2>/dev/null; then rm -rf "${REL:?}/$d"; echo "pruned $d"; fi
  done
  rm -rf "$REL"/.*.partial
  ;;

switch) # switch NAME: point `current` at NAME with one rename, then restart the service. The
        # socket stays open meanwhile: connections wait in its queue for the new process.
  check_name "$1"
  [ -x "$REL/$1/vehicleconnect" ] || die "no release $1 on this host"
  ln -sfn "releases/$1" "$BASE/current.new"
  mv -T "$BASE/current.new" "$BASE/current"
  systemctl reset-failed $UNIT 2>/dev/null || true
  echo "since $(date +%s)"
  systemctl restart $UNIT || true
  ;;

probe) # probe PORT UNIT: the service's own answer on the host, and what systemd says of it.
  body=$(curl -s -m 2 -w '\nhttp %{http_code}' "http://127.0.0.1:$1/api/status") && rc=0 || rc=$?
  echo "curl $rc"
  printf '%s\n' "$body" | sed -n '$!s/^/body /p;$p'
  systemctl show "$2.service" -p ActiveState -p SubState -p NRestarts -p ExecMainStatus
  echo "SocketState=$(systemctl is-active "$2.socket" 2>/dev/null || true)"
  ;;

diagnose) # diagnose SINCE_EPOCH UNIT: systemctl status and the journal since the start.
  systemctl status "$2.service" --no-pager -l -n 0 2>&1 || true
  echo "--- journal"
  journalctl -u "$2.service" --no-pager -o short-iso -n 30 --since "@$1" 2>&1 || true
  ;;

finish) # finish NAME VERDICT KEEP: the final receipt (stdin); failed releases are moved aside,
        # good ones beyond the newest KEEP deleted (never the current one).
  check_name "$1"
  [ -d "$REL/$1" ] || die "no release $1 on this host"
  cat > "$REL/$1/release.json.new"; mv -f "$REL/$1/release.json.new" "$REL/$1/release.json"
  cur=$(current)
  if [ "$2" = failed ] && [ "$1" != "$cur" ]; then
    install -d -m 755 "$FAILED"; rm -rf "$FAILED/$1"; mv "$REL/$1" "$FAILED/$1"
    ls -1 "$FAILED" | sort -r | tail -n +6 | while read -r old; do rm -rf "$FAILED/$old"; done
  fi
  n=0
  for d in $(ls -1 "$REL" | sort -r); do
    [ "$d" = "$cur" ] && { n=$((n + 1)); continue; }
    # (Pending releases left by a killed deploy are dropped by `cleanup`, before any deploy.)
    if grep -q '"verdict": *"healthy"' "$REL/$d/release.json" 2>/dev/null; then
      n=$((n + 1)); [ $n -le "$3" ] || { rm -rf "${REL:?}/$d"; echo "pruned $d"; }
    fi
  done
  ;;

logs) # logs LINES [follow]
  if [ "${2:-}" = follow ]; then exec journalctl -u $UNIT --no-pager -o short-iso -n "$1" -f; fi
  exec journalctl -u $UNIT --no-pager -o short-iso -n "$1"
  ;;

destroy) # destroy keep-data|delete-data: remove the service; PostgreSQL and Prometheus stay.
  systemctl disable --now $SOCKET $UNIT $CANDIDATE.socket $CANDIDATE.service >/dev/null 2>&1 || true
  rm -f /etc/systemd/system/$UNIT /etc/systemd/system/$SOCKET /etc/systemd/system/$CANDIDATE.*
  systemctl daemon-reload
  if [ "$1" = delete-data ]; then
    runuser -u postgres -- psql -q -c 'DROP DATABASE IF EXISTS vehicleconnect' >/dev/null
    runuser -u postgres -- psql -q -c 'DROP ROLE IF EXISTS vehicleconnect' >/dev/null
    rm -rf /var/lib/vehicleconnect "$ETC"
  fi
  rm -rf "$REL" "$FAILED" "$BASE/current" "$BASE/candidate"
  ;;

*) die "unknown command: $cmd" ;;
esac
