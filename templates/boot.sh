#!/bin/sh
# The user data of a `scale:` stack's instances (rendered by vcctl from templates/boot.sh into
# the launch template). cloud-init runs it once, as root, at an instance's first boot, whether
# Auto Scaling launched it to scale out or to replace a failed one; nobody runs vcctl for it.
# It fetches the host kit and the *serving* release from the stack's bucket (the object
# `serving` names it, and only a deploy that left every instance healthy moves it), writes the
# database's URL from the secret RDS keeps, and starts the service. The load balancer sends
# it requests once its health check passes (/api/status).
#
# S3 and Secrets Manager are called with curl's own SigV4 signing and the instance role's
# credentials from IMDSv2: a Debian AMI has curl and python3 (for JSON), and nothing else is
# installed. The stack's values below are defaults: tests run this script on a test host
# with AWS_ENDPOINT_URL (an emulator), static keys and the database's address set.
set -eu
export LC_ALL=C
: "${VC_STACK:={{stack}}}" "${VC_BUCKET:={{bucket}}}" "${VC_REGION:={{region}}}" "${VC_PORT:={{port}}}"
: "${VC_DB_ENDPOINT:={{db_endpoint}}}" "${VC_DB_NAME:={{db_name}}}" "${VC_DB_SECRET:={{db_secret}}}"
: "${VC_INGEST_TOKEN_ON:={{ingest_token}}}" "${VC_DB_CA_FROM:={{database_ca}}}" "${VC_HEALTH_TIMEOUT_S:=120}"
: "${VC_ORIGIN_SECRET_ON:={{origin_secret}}}"
BASE=/opt/vehicleconnect
WORK=$(mktemp -d /run/vcctl-boot.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# SHA-256 of nothing: the payload hash of a GET, which S3 wants signed.
EMPTY=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# To cloud-init's output, and to the journal, from which the instance's lines are shipped to
# CloudWatch Logs (vehicleconnect-logs): the boot's story outlives an instance that fails it.
log() { echo "vcctl-boot: $*" >&2; logger -t vcctl-boot -- "$*" 2>/dev/null || true; }
die() { log "$*"; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# The instance role's temporary credentials, from IMDSv2 (a token first: IMDSv1 is off).
credentials() {
  [ -z "${AWS_ACCESS_KEY_ID:-}" ] || return 0
  imds=http://169.254.169.254/latest
  token=$(curl -fsS -m 5 --retry 10 --retry-connrefused -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 600' "$imds/api/token")
  role=$(curl -fsS -m 5 --retry 5 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/iam/security-credentials/")
  curl -fsS -m 5 --retry 5 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/iam/security-credentials/$role" > "$WORK/creds"
  AWS_ACCESS_KEY_ID=$(json "['AccessKeyId']" < "$WORK/creds")
  AWS_SECRET_ACCESS_KEY=$(json "['SecretAccessKey']" < "$WORK/creds")
  AWS_SESSION_TOKEN=$(json "['Token']" < "$WORK/creds")
  rm -f "$WORK/creds"
}

# aws SERVICE URL CURL-ARGS...: a signed request; the keys go to curl in a file, never argv.
aws() {
  service=$1 url=$2; shift 2
  (umask 077
   { printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
     [ -z "${AWS_SESSION_TOKEN:-}" ] || printf 'header = "x-amz-security-token: %s"\n' "$AWS_SESSION_TOKEN"; } > "$WORK/curlrc")
  curl -fsS -m 120 --retry 5 --retry-connrefused -K "$WORK/curlrc" --aws-sigv4 "aws:amz:$VC_REGION:$service" "$@" "$url"
}

# get KEY FILE: an object of the stack's bucket.
get() {
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then url=$AWS_ENDPOINT_URL/$VC_BUCKET/$1
  else url=https://$VC_BUCKET.s3.$VC_REGION.amazonaws.com/$1; fi
  aws s3 "$url" -H "x-amz-content-sha256: $EMPTY" -o "$2" || die "could not fetch s3://$VC_BUCKET/$1"
}

# The master's login, from the secret RDS keeps for it (and rotates), as libpq's variables
# in $WORK/master.env (0600). Used by this script only, to make the service's own role.
master_login() {
  url=${AWS_ENDPOINT_URL:-https://secretsmanager.$VC_REGION.amazonaws.com}
  printf '{"SecretId": "%s"}' "$VC_DB_SECRET" > "$WORK/ask"
  aws secretsmanager "$url/" -X POST -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'X-Amz-Target: secretsmanager.GetSecretValue' --data-binary "@$WORK/ask" > "$WORK/secret" \
    || die "could not read the database's secret $VC_DB_SECRET"
  (umask 077 && python3 - "$VC_DB_ENDPOINT" "$VC_DB_NAME" "$WORK/secret" > "$WORK/master.env") <<'PY'
import json, shlex, sys
endpoint, name, path = sys.argv[1:]
with open(path) as f:
    secret = json.loads(json.load(f)["SecretString"])
host, _, port = endpoint.rpartition(":") if ":" in endpoint else (endpoint, "", "5432")
for k, v in (("PGHOST", host), ("PGPORT", port), ("PGDATABASE", name), ("PGUSER", secret["username"]), ("PGPASSWORD", secret["password"])):
    print(f"{k}={shlex.quote(v)}")
PY
  rm -f "$WORK/secret"
}

# The service's own role, `vehicleconnect_app`, owning the database and what is in it: made at
# the first boot with the master's login, allowed to create databases (`vcctl db restore`
# restores into a new one beside the serving one, then points the group at it), its password
# (the bucket's host/db-password) set when it does not log in with it. The password reaches PostgreSQL only as psql's \password
# sends it, a SCRAM verifier. The service never uses the master's login, so RDS rotating it
# changes nothing the service holds.
app_role() {
  get host/db-password "$WORK/app-password"
  # shellcheck disable=SC1091 # written just above
  (. "$WORK/master.env"; export PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSSLMODE=verify-full PGSSLROOTCERT="$CA" PGCONNECT_TIMEOUT=10
   psql -q -v ON_ERROR_STOP=1 -v role=vehicleconnect_app >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('GRANT %I TO %I', :'role', current_user) WHERE NOT pg_has_role(current_user, :'role', 'MEMBER') \gexec
SELECT format('ALTER ROLE %I CREATEDB', :'role') FROM pg_roles WHERE rolname = :'role' AND NOT rolcreatedb \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', current_database(), :'role') \gexec
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'role') FROM pg_tables
  WHERE schemaname = 'public' AND tableowner = current_user \gexec
SQL
   pw=$(cat "$WORK/app-password")
   PGUSER=vehicleconnect_app PGPASSWORD=$pw psql -qAtc 'select 1' >/dev/null 2>&1 && exit 0
   # No terminal (setsid): \password reads the new password twice from stdin.
   printf '%s\n%s\n' "$pw" "$pw" | setsid -w psql -q -c '\password vehicleconnect_app' >/dev/null) \
    || die "could not make the service's database role with the master's login (secret $VC_DB_SECRET)"
}

# The service's database URL: its own role, never the master.
database_url() {
  python3 - "$VC_DB_ENDPOINT" "$VC_DB_NAME" "$WORK/app-password" <<'PY'
import sys, urllib.parse
endpoint, name, path = sys.argv[1:]
with open(path) as f:
    password = urllib.parse.quote(f.read().strip(), safe="")
print(f"postgres://vehicleconnect_app:{password}@{endpoint}/{name}")
PY
}

credentials
get host/vc-host "$WORK/vc-host"
install -D -m 755 "$WORK/vc-host" "$BASE/bin/vc-host"
VC_HOST=$BASE/bin/vc-host
"$VC_HOST" account
for unit in vehicleconnect.service vehicleconnect.socket vehicleconnect-candidate.service vehicleconnect-candidate.socket \
    vehicleconnect-ssh-sweep.service vehicleconnect-ssh-sweep.timer vehicleconnect-logs.service; do
  get "host/systemd/$unit" "$WORK/$unit"
  "$VC_HOST" put "/etc/systemd/system/$unit" 0644 < "$WORK/$unit" >/dev/null
done
# TLS to RDS, its certificate verified: with the stack's bundle (scale.database.ca_file),
# else the region's from AWS's trust store (over HTTPS, checked against the system's roots).
CA=$BASE/database-ca.pem
if [ "$VC_DB_CA_FROM" = bucket ]; then get host/database-ca.pem "$WORK/ca.pem"
else curl -fsS -m 60 --retry 5 -o "$WORK/ca.pem" "https://truststore.pki.rds.amazonaws.com/$VC_REGION/$VC_REGION-bundle.pem" \
  || die "could not fetch RDS's certificate bundle for $VC_REGION from truststore.pki.rds.amazonaws.com"; fi
"$VC_HOST" put "$CA" 0644 < "$WORK/ca.pem" >/dev/null
# `service.ingest_token: false` in the stack: the service takes events without one.
[ "$VC_INGEST_TOKEN_ON" = yes ] && get host/ingest-token "$WORK/token"
# `cdn: true`: the service answers only requests that carry the distribution's secret header.
[ "$VC_ORIGIN_SECRET_ON" = yes ] && get host/origin-secret "$WORK/origin-secret"
# The service's secrets (`vcctl secrets`), as the bucket keeps them for every instance.
get host/secrets "$WORK/secrets"
# psql, for the role (Debian's AMI has no PostgreSQL client).
command -v psql >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client; } >&2 \
  || die "could not install postgresql-client"
master_login
app_role
{ printf 'DATABASE_URL=%s\nVC_DATABASE_CA=%s\n' "$(database_url)" "$CA"
  [ ! -s "$WORK/token" ] || printf 'VC_INGEST_TOKEN=%s\n' "$(cat "$WORK/token")"
  [ ! -s "$WORK/origin-secret" ] || printf 'VC_ORIGIN_SECRET=%s\n' "$(cat "$WORK/origin-secret")"; } | "$VC_HOST" put /etc/vehicleconnect/env 0600 >/dev/null
"$VC_HOST" put /etc/vehicleconnect/secrets 0600 < "$WORK/secrets" >/dev/null

get serving "$WORK/serving"
read -r release sha256 < "$WORK/serving" || die "the bucket's serving pointer is empty"
log "stack $VC_STACK: release $release serves; fetching it"
get "releases/$release/vehicleconnect" "$WORK/vehicleconnect"
get "releases/$release/release.json" "$WORK/release.json"
"$VC_HOST" receive "$sha256" "$release" "$(cat "$WORK/release.json")" < "$WORK/vehicleconnect"
"$VC_HOST" units yes
"$VC_HOST" switch "$release" >/dev/null
# Prometheus, finding the replicas by the stack's tag (templates/prometheus-group.yml).
prometheus() {
  # Not `vc-host packages`, which first waits for cloud-init: this script is cloud-init's.
  # (python3-botocore: the SSH sweep's timer, vehicleconnect-ssh-sweep, signs with it.)
  missing=""
  for p in prometheus python3-botocore; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # one word per package
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >&2 || return 1
  fi
  get host/prometheus.yml "$WORK/prometheus.yml"
  get host/prometheus.default "$WORK/prometheus.default"
  get host/prometheus-rules.yml "$WORK/prometheus-rules.yml"
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then   # tests: the emulator, and its keys
    sed -i "s|^\( *\)# (an emulator's endpoint and keys, in tests only)|\1endpoint: $AWS_ENDPOINT_URL\n\1access_key: $AWS_ACCESS_KEY_ID\n\1secret_key: $AWS_SECRET_ACCESS_KEY|" "$WORK/prometheus.yml"
  fi
  "$VC_HOST" put /etc/prometheus/vehicleconnect-rules.yml 0644 < "$WORK/prometheus-rules.yml" >/dev/null || return 1
  "$VC_HOST" put /etc/prometheus/prometheus.yml 0644 < "$WORK/prometheus.yml" >/dev/null || return 1
  "$VC_HOST" put /etc/default/prometheus 0644 < "$WORK/prometheus.default" >/dev/null || return 1
  "$VC_HOST" prometheus yes
}

deadline=$(( $(date +%s) + VC_HEALTH_TIMEOUT_S ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$VC_PORT/api/status" 2>/dev/null; then
    log "release $release healthy on port $VC_PORT"
    # After the service: the instance serves without it.
    prometheus || log "Prometheus is not set up on this instance (the service serves regardless)"
    exit 0
  fi
  sleep 1
done
# What went wrong, where cloud-init keeps the output (/var/log/cloud-init-output.log).
journalctl -u vehicleconnect --no-pager -n 20 >&2 || true
die "release $release did not become healthy on port $VC_PORT in ${VC_HEALTH_TIMEOUT_S} s"
