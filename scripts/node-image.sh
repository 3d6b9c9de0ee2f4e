#!/usr/bin/env bash
# A local stand-in for the official node image (node:22-bookworm-slim), made without a
# registry: Debian trixie's nodejs (Node 20) and every library it links, from the host's
# Debian mirror with `apt-get download`, turned into an image with `docker import`.
# docker/Dockerfile.tools copies /usr/local/ out of the node image (COPY --from); in the
# official image that is /usr/local/bin/node, here it is a self-contained tree:
#   /usr/local/lib/node-debian/   node, its libraries and the trixie glibc loader
#   /usr/local/nodejs/            the builtins Debian ships as files (/usr/share/nodejs)
#   /usr/local/bin/node           sh wrapper running node through that loader
#   /bin/sh, env, sleep, ...      Debian's busybox-static (the image runs `node app.mjs` too)
# so it runs on any base (the official nginx image is bookworm, glibc 2.36; trixie's node
# needs 2.38+) without mixing in the base's libraries.
# Usage: DOCKER_HOST=... scripts/node-image.sh [TAG]   (default gatewayctl/node-local:debian)
# Prints the tag on the last line of stdout.
set -euo pipefail

TAG="${1:-gatewayctl/node-local:debian}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
SUITE="${GATEWAYCTL_NODE_SUITE:-trixie}"
for tool in apt-get apt-cache dpkg docker; do
  command -v "$tool" >/dev/null || { echo "node-image: $tool is required" >&2; exit 1; }
done
# shellcheck source=lib/debian-mirror.sh
. "$HERE/scripts/lib/debian-mirror.sh"
MIRROR="$(debian_mirror)" || { echo "node-image: cannot choose a Debian mirror" >&2; exit 1; }
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || { echo "node-image: $KEYRING missing (install debian-archive-keyring)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/debs" "$WORK/x"
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$WORK/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$WORK/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$WORK/apt/lists"
  -o "Dir::Cache=$WORK/apt/cache"
  -o "Dir::State::status=/dev/null"
  -o "APT::Sandbox::User=root"
)
apt-get "${APT_OPTS[@]}" -qq update >&2
mapfile -t PACKAGES < <(
  { echo nodejs
    apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances nodejs | grep -v '^[ <]'
  } | sort -u)
(cd "$WORK/debs" && apt-get "${APT_OPTS[@]}" -qq download "${PACKAGES[@]}" >&2)
for deb in "$WORK/debs"/*.deb; do dpkg -x "$deb" "$WORK/x"; done

FS="$WORK/rootfs"
LIB="$FS/usr/local/lib/node-debian"
mkdir -p "$LIB" "$FS/usr/local/bin"
cp "$(readlink -f "$WORK/x/usr/bin/node")" "$LIB/node"
# every shared library of the closure (glibc included) flat in one directory
for d in "$WORK/x/usr/lib/x86_64-linux-gnu" "$WORK/x/lib/x86_64-linux-gnu"; do
  [ -d "$d" ] || continue
  find "$d" -maxdepth 1 -name '*.so*' | while read -r so; do cp -L "$so" "$LIB/$(basename "$so")"; done
done
test -e "$LIB/ld-linux-x86-64.so.2"
# Debian's node loads some builtins (cjs-module-lexer, undici, acorn, ...) from files under
# /usr/share/nodejs, a path compiled into libnode; the tree moves to /usr/local/nodejs (a
# path of the same length, patched in place) so /usr/local/ is all there is to copy.
mkdir -p "$FS/usr/local/nodejs"
cp -aL "$WORK/x/usr/share/nodejs/." "$FS/usr/local/nodejs/"
for f in "$LIB"/libnode.so* "$LIB/node"; do
  if grep -q /usr/share/nodejs/ "$f"; then sed -i 's|/usr/share/nodejs/|/usr/local/nodejs/|g' "$f"; fi
done
cat >"$FS/usr/local/bin/node" <<'EOF'
#!/bin/sh
# Debian's node with its own libraries and loader (scripts/node-image.sh)
exec /usr/local/lib/node-debian/ld-linux-x86-64.so.2 --library-path /usr/local/lib/node-debian /usr/local/lib/node-debian/node "$@"
EOF
chmod 0755 "$FS/usr/local/bin/node"
# a shell (the wrapper's, and `command:` lines of compose): Debian's busybox-static
(cd "$WORK" && apt-get "${APT_OPTS[@]}" -qq download busybox-static >&2)
dpkg -x "$WORK"/busybox-static_*.deb "$WORK/busybox"
mkdir -p "$FS/bin" "$FS/tmp"
chmod 1777 "$FS/tmp"
cp "$(find "$WORK/busybox" -path '*bin/busybox' -type f | head -1)" "$FS/bin/busybox"
for tool in sh env sleep kill cat ls; do ln -s busybox "$FS/bin/$tool"; done
tar -C "$FS" -c . | docker import - "$TAG" >&2
# it runs (the image has no shell: the loader directly) and is Node >= 20
docker run --rm --network none --entrypoint /usr/local/lib/node-debian/ld-linux-x86-64.so.2 "$TAG" \
  --library-path /usr/local/lib/node-debian /usr/local/lib/node-debian/node \
  -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' >&2 \
  || { echo "node-image: Debian $SUITE's node does not run in the image or is older than 20" >&2; exit 1; }
echo "$TAG"
