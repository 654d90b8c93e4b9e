# shellcheck shell=bash
# Shell functions shared by scripts/test-services and scripts/test-host (sourced, not run).
# The sourcing script defines `log`.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {   # apt_install PACKAGE... : Debian packages, only those missing
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (apt)"
  as_root apt-get update -qq >&2
  # policy-rc.d keeps package services from auto-starting where it exists; we start our own.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
