#!/usr/bin/env bash
# A local image with the official nginx image's layout, made without a registry: the project
# runtime's Debian packages (nginx + the njs module, unpacked by provision-runtime.sh) as the
# root filesystem, turned into an image with `docker import`.
#   /usr/sbin/nginx, /etc/nginx/modules -> /usr/lib/nginx/modules (ngx_http_js_module.so),
#   /var/log/nginx/{access,error}.log -> /dev/stdout, /dev/stderr, users root/nginx/nobody,
#   /bin/sh and sleep (preStop hooks), Debian's busybox-static for the other shell tools a
#   Dockerfile's RUN lines use (docker/Dockerfile builds FROM it as FROM nginx:1.27). (`docker import` cannot set STOPSIGNAL: run it with
#   --stop-signal SIGQUIT, as the official image's STOPSIGNAL does.)
# The official image (nginx:1.27, for users) has the same paths; this one exists because no
# registry is reachable here.
# Usage: DOCKER_HOST=... scripts/nginx-image.sh [TAG]   (default gatewayctl/nginx-local:runtime)
# Prints the tag on the last line of stdout.
set -euo pipefail

TAG="${1:-gatewayctl/nginx-local:runtime}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(readlink -f "$HERE/.runtime/root")"
[ -x "$ROOT/usr/sbin/nginx" ] || { echo "nginx-image: no runtime in $ROOT (bash scripts/provision-runtime.sh)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
FS="$WORK/rootfs"
mkdir -p "$FS"
cp -a "$ROOT/." "$FS/"
# merged /usr, and the loader where ELF binaries look for it
for d in bin sbin lib; do [ -e "$FS/$d" ] || ln -s "usr/$d" "$FS/$d"; done
mkdir -p "$FS/lib64" "$FS/usr/bin"
[ -e "$FS/lib64/ld-linux-x86-64.so.2" ] || ln -s /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$FS/lib64/ld-linux-x86-64.so.2"
# a shell and sleep for the preStop hook (they need only libc, which the runtime ships)
cp "$(readlink -f "$(command -v dash)")" "$FS/usr/bin/dash"
ln -sf dash "$FS/usr/bin/sh"
cp "$(readlink -f "$(command -v sleep)")" "$FS/usr/bin/sleep"
# the shell tools the official image (Debian) has and Dockerfiles built FROM it use in RUN
# (mkdir, ln, chown, chmod, find, ...): Debian's busybox-static, linked where nothing else is
( cd "$WORK" && apt-get download -qq busybox-static >/dev/null 2>&1 || { apt-get update -qq >&2 && apt-get download -qq busybox-static >&2; } )
dpkg -x "$WORK"/busybox-static_*.deb "$WORK/busybox"
cp "$WORK/busybox/bin/busybox" "$FS/usr/bin/busybox"
for tool in $("$FS/usr/bin/busybox" --list); do
  [ -e "$FS/usr/bin/$tool" ] || [ -e "$FS/usr/sbin/$tool" ] || ln -s busybox "$FS/usr/bin/$tool"
done
# the official image's layout
mkdir -p "$FS/etc/nginx" "$FS/var/log/nginx" "$FS/var/cache/nginx" "$FS/tmp" "$FS/dev" "$FS/proc" "$FS/sys"
chmod 1777 "$FS/tmp"
ln -sfn /usr/lib/nginx/modules "$FS/etc/nginx/modules"
ln -sf /dev/stdout "$FS/var/log/nginx/access.log"
ln -sf /dev/stderr "$FS/var/log/nginx/error.log"
printf 'root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$FS/etc/passwd"
printf 'root:x:0:\nnginx:x:101:\nnogroup:x:65534:\n' >"$FS/etc/group"
test -e "$FS/usr/lib/nginx/modules/ngx_http_js_module.so"

tar -C "$FS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["nginx", "-g", "daemon off;"]' \
  - "$TAG" >&2
echo "$TAG"
