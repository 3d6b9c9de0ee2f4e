# shellcheck shell=bash
# apt_install TAG PACKAGE...: install Debian packages as root (or with sudo -n), running
# `apt-get update` only when the first attempt fails (a bare machine may have no package
# lists yet). Output goes to /tmp/provision-TAG.log; its tail is shown on failure.
apt_install() {
  local tag="$1"; shift
  local log="/tmp/provision-$tag.log"
  command -v apt-get >/dev/null 2>&1 || { echo "provision-$tag: apt-get is required (Debian/Ubuntu host)" >&2; return 1; }
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "provision-$tag: run as root (or install sudo) to apt-get install $*" >&2; return 1; }
    sudo=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
    "${sudo[@]}" apt-get update -qq >>"$log" 2>&1 || true
    if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >>"$log" 2>&1; then
      echo "provision-$tag: apt-get install $* failed; see $log" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
  fi
}
