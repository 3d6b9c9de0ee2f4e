# shellcheck shell=bash
# debian_mirror: print the Debian archive URI to fetch packages from (no trailing slash).
#
#   1. $GATEWAYCTL_DEBIAN_MIRROR when set (an http:// or https:// URI), else
#   2. the first Debian archive the host's own apt uses, in apt's reading order:
#      $GATEWAYCTL_APT_DIR/sources.list, then $GATEWAYCTL_APT_DIR/sources.list.d/* sorted by
#      name (*.list one-line entries, *.sources deb822 stanzas; GATEWAYCTL_APT_DIR defaults
#      to /etc/apt). An entry counts when it is a binary (`deb`) entry over http(s), its
#      suite is a Debian release (codename or stable/testing/unstable/oldstable, optionally
#      -updates/-backports/-proposed-updates), and it is not the security archive
#      (`*-security` suites, `debian-security` URIs). Disabled deb822 stanzas
#      (`Enabled: no`) and third-party repositories (other suites) are skipped.
#
# No host is built in: with neither, it fails with a message saying what to set.
# Returns 1 (message on stderr) when no mirror is found or the override is malformed.

DEBIAN_SUITE_RE='^(buster|bullseye|bookworm|trixie|forky|duke|sid|stable|testing|unstable|oldstable|oldoldstable)(-updates|-backports|-backports-sloppy|-proposed-updates)?$'

# "URI SUITE" per binary entry of one apt sources file, in file order.
_debian_mirror_entries() {
  local file="$1"
  case "$file" in
    *.sources)
      awk '
        function flush(   n, m, i, j, u, s) {
          if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
            n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
            for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) if (u[i] != "" && s[j] != "") print u[i], s[j]
          }
          types = ""; uris = ""; suites = ""; enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { next }                       # continuation of a multi-line field
        {
          i = index($0, ":"); if (i == 0) next
          key = tolower(substr($0, 1, i - 1)); val = substr($0, i + 1)
          gsub(/^[ \t]+|[ \t]+$/, "", val)
          if (key == "types") types = val
          else if (key == "uris") uris = val
          else if (key == "suites") suites = val
          else if (key == "enabled") enabled = tolower(val)
        }
        END { flush() }
      ' "$file"
      ;;
    *)
      awk '
        { sub(/^[ \t]+/, "") }
        /^#/ { next }
        $1 == "deb" {
          line = $0
          sub(/^deb[ \t]+/, "", line)
          if (substr(line, 1, 1) == "[") { if (!sub(/^\[[^]]*\][ \t]*/, "", line)) next }
          n = split(line, a, /[ \t]+/)
          if (n >= 2) print a[1], a[2]
        }
      ' "$file"
      ;;
  esac
}

debian_mirror() {
  local uri_re='^https?://[^][:space:]"'"'"';[]+$'
  if [ -n "${GATEWAYCTL_DEBIAN_MIRROR:-}" ]; then
    if [[ ! "$GATEWAYCTL_DEBIAN_MIRROR" =~ $uri_re ]]; then
      echo "GATEWAYCTL_DEBIAN_MIRROR must be an http:// or https:// URI of a Debian archive, not \"$GATEWAYCTL_DEBIAN_MIRROR\"" >&2
      return 1
    fi
    printf '%s\n' "${GATEWAYCTL_DEBIAN_MIRROR%/}"
    return 0
  fi
  local dir="${GATEWAYCTL_APT_DIR:-/etc/apt}"
  local files=() f
  [ -f "$dir/sources.list" ] && files+=("$dir/sources.list")
  if [ -d "$dir/sources.list.d" ]; then
    while IFS= read -r f; do
      case "$f" in *.list | *.sources) [ -f "$dir/sources.list.d/$f" ] && files+=("$dir/sources.list.d/$f") ;; esac
    done < <(LC_ALL=C ls -1 "$dir/sources.list.d")
  fi
  local uri suite
  for f in "${files[@]}"; do
    while read -r uri suite; do
      case "$uri" in http://* | https://*) ;; *) continue ;; esac
      case "$uri" in *debian-security*) continue ;; esac
      case "$suite" in *-security | */updates) continue ;; esac
      [[ "$suite" =~ $DEBIAN_SUITE_RE ]] || continue
      printf '%s\n' "${uri%/}"
      return 0
    done < <(_debian_mirror_entries "$f")
  done
  echo "no Debian archive found in the host's apt configuration ($dir/sources.list, $dir/sources.list.d/*.list, *.sources);" \
    "set GATEWAYCTL_DEBIAN_MIRROR to a Debian mirror URI, e.g. GATEWAYCTL_DEBIAN_MIRROR=http://<your mirror>/debian" >&2
  return 1
}
