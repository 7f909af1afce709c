#!/usr/bin/env bash
# prepare.sh — build (once) and cache the guest kernel + initramfs used by run-guest.sh.
#
# Usage: prepare.sh [--kernel 6.1|6.12] [--no-smoke]
#   Prints the cache directory (holding `kernel` and `initramfs.cpio`) on the LAST stdout line;
#   all progress goes to stderr. Idempotent; concurrent callers are serialised with flock.
#   --kernel 6.1   Debian 12's own kernel (default): linux-image-amd64 from bookworm
#   --kernel 6.12  bookworm-backports' linux-image-amd64 (NVMe in-band auth, TLS); downloaded through a
#                  private apt source list under the cache root, never added to the host's apt sources
#   --no-smoke     skip the one-off boot test done after a cold build.
# Env:
#   NVMET_GUEST_CACHE   cache root (default /var/cache/nvmetcp-guest)
#   NVMET_GUEST_KERNEL  default for --kernel (6.1)
#   NVMET_GUEST_KERNEL_PKG  kernel package to use (default: what linux-image-amd64 depends on)
#   CI=true             missing prerequisites are a hard failure (exit 1) instead of exit 77 (skip)
# Exit codes: 0 ok; 1 build failure (or prerequisites missing with CI=true); 77 prerequisites
#   missing and could not be installed (CI not true) — callers may treat this as "skip".
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="prepare.sh"
log() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: ERROR: $*" >&2; exit 1; }

SMOKE=1
KFLAVOUR="${NVMET_GUEST_KERNEL:-6.1}"
while [ $# -gt 0 ]; do
    case "$1" in
        --no-smoke) SMOKE=0; shift ;;
        --kernel) [ $# -ge 2 ] || die "--kernel needs a value (6.1 or 6.12)"; KFLAVOUR="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" >&2; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
case "$KFLAVOUR" in
    6.1|6.12) ;;
    *) die "--kernel must be 6.1 or 6.12 (got '$KFLAVOUR')" ;;
esac

CACHE_ROOT="${NVMET_GUEST_CACHE:-/var/cache/nvmetcp-guest}"
mkdir -p "$CACHE_ROOT" || { echo "$PROG: ERROR: cannot create cache dir $CACHE_ROOT" >&2; exit 1; }
CACHE_ROOT="$(cd "$CACHE_ROOT" && pwd -P)"
INIT_SRC="$SCRIPT_DIR/guest-init.sh"
[ -f "$INIT_SRC" ] || die "missing $INIT_SRC"

# Refuse to put the cache inside a git work tree (it is hundreds of MB).
case "$(cd "$SCRIPT_DIR" && git rev-parse --show-toplevel 2>/dev/null || true)" in
    "") ;;
    *)  top="$(cd "$SCRIPT_DIR" && git rev-parse --show-toplevel)"
        case "$CACHE_ROOT/" in
            "$(cd "$top" && pwd -P)/"*) die "NVMET_GUEST_CACHE ($CACHE_ROOT) is inside the git repo $top; choose another path" ;;
        esac ;;
esac

# ---------------------------------------------------------------------------------------------
# 1. Host prerequisites (Debian packages).
# ---------------------------------------------------------------------------------------------
PKGS=(qemu-system-x86 busybox-static nvme-cli fio kmod cpio xz-utils)
prereq_fail() {
    if [ "${CI:-}" = "true" ]; then
        {
            echo "################################################################"
            echo "$PROG: FATAL (CI=true): $*"
            echo "$PROG: the NVMe/TCP guest harness cannot run on this machine."
            echo "################################################################"
        } >&2
        exit 1
    fi
    log "prerequisites unavailable: $* — exiting 77 (skip)"
    exit 77
}
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

command -v dpkg-query >/dev/null || prereq_fail "not a Debian/Ubuntu system (no dpkg-query)"
missing=()
for p in "${PKGS[@]}"; do pkg_installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || prereq_fail "missing packages ${missing[*]} and not root to install them"
    log "installing missing packages: ${missing[*]}"
    # Another apt may hold the dpkg lock; wait for it (up to 10 min).
    apt_opts=(-o DPkg::Lock::Timeout=600)
    if ! { apt-get "${apt_opts[@]}" update -q >&2 &&
           DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}" >&2; }; then
        prereq_fail "apt-get install ${missing[*]} failed"
    fi
fi
for c in qemu-system-x86_64 busybox nvme fio kmod cpio xz flock apt-get dpkg-deb depmod ldd ldconfig; do
    command -v "$c" >/dev/null || prereq_fail "command '$c' not found"
done

# ---------------------------------------------------------------------------------------------
# 2. Cache key.
# ---------------------------------------------------------------------------------------------
# 6.1: the host's own apt sources (bookworm). 6.12: only bookworm-backports, through a private source
# list and package lists under the cache root, so the host's apt never sees backports (nothing can be
# installed from it by accident) and its package cache is not touched. APT_OPTS goes to every apt call.
APT_OPTS=()
if [ "$KFLAVOUR" = 6.12 ]; then
    BPO="$CACHE_ROOT/.apt-bookworm-backports"
    mkdir -p "$BPO/lists/partial"
    bpo_line='deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main'
    [ "$(cat "$BPO/sources.list" 2>/dev/null)" = "$bpo_line" ] || printf '%s\n' "$bpo_line" > "$BPO/sources.list"
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || prereq_fail "no /usr/share/keyrings/debian-archive-keyring.gpg (package debian-archive-keyring)"
    APT_OPTS=(-o "Dir::Etc::sourcelist=$BPO/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$BPO/lists"
              -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Get::List-Cleanup=0)
    bpo_update() { apt-get "${APT_OPTS[@]}" update -q >&2 || log "WARNING: apt-get update of bookworm-backports failed"; }
    # Lists older than a day may name a kernel the mirror no longer has: refresh them (about 1 s).
    if [ -z "$(find "$BPO/lists" -maxdepth 1 -name '*_InRelease' -mmin -1440 2>/dev/null)" ]; then
        log "refreshing the bookworm-backports package lists ($BPO)"
        bpo_update
    fi
fi
# One apt-cache call (~0.7 s without pkgcache.bin): the metapackage pins the exact version,
# e.g. "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
resolve_kernel_pkg() {
    if [ -n "${NVMET_GUEST_KERNEL_PKG:-}" ]; then
        apt-cache "${APT_OPTS[@]+"${APT_OPTS[@]}"}" show --no-all-versions "$NVMET_GUEST_KERNEL_PKG" 2>/dev/null |
            awk -v p="$NVMET_GUEST_KERNEL_PKG" '/^Version:/ {print p, $2; exit}'
    else
        apt-cache "${APT_OPTS[@]+"${APT_OPTS[@]}"}" show --no-all-versions linux-image-amd64 2>/dev/null |
            sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -n 1
    fi
}
KPKG_LINE="$(resolve_kernel_pkg || true)"
if [ -z "$KPKG_LINE" ]; then
    log "kernel package unknown to apt; running apt-get update"
    if [ "$KFLAVOUR" = 6.12 ]; then
        bpo_update
    else
        apt-get -o DPkg::Lock::Timeout=600 update -q >&2 || true
    fi
    KPKG_LINE="$(resolve_kernel_pkg || true)"
fi
[ -n "$KPKG_LINE" ] || prereq_fail "cannot resolve the kernel package (${NVMET_GUEST_KERNEL_PKG:-behind linux-image-amd64}); apt lists missing?"
read -r KPKG KPKG_VER <<< "$KPKG_LINE"
KVER="${KPKG#linux-image-}"          # e.g. 6.1.0-56-amd64 (the modules directory name)
case "$KVER" in
    "$KFLAVOUR".*) ;;
    *) die "kernel $KPKG is not a $KFLAVOUR kernel (--kernel $KFLAVOUR)" ;;
esac

ver() { dpkg-query -W -f='${Version}' "$1"; }
KEY_TEXT="kernel=$KPKG=$KPKG_VER nvme-cli=$(ver nvme-cli) fio=$(ver fio) busybox=$(ver busybox-static) kmod=$(ver kmod) libc=$(ver libc6)
$(sha256sum "${BASH_SOURCE[0]}" "$INIT_SRC" | awk '{print $1}')"
KEY="${KVER}-$(printf '%s' "$KEY_TEXT" | sha256sum | cut -c1-16)"
OUT="$CACHE_ROOT/$KEY"

if [ -f "$OUT/.complete" ]; then
    log "cache hit: $OUT"
    echo "$OUT"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# 3. Build (serialised).
# ---------------------------------------------------------------------------------------------
exec 9>"$CACHE_ROOT/.lock"
if ! flock -n 9; then
    log "another prepare.sh is building; waiting for the lock"
    flock 9
fi
if [ -f "$OUT/.complete" ]; then
    log "cache hit (built by a concurrent caller): $OUT"
    echo "$OUT"
    exit 0
fi

T0=$(date +%s)
log "building guest image $KEY (kernel $KPKG $KPKG_VER)"
BUILD="$CACHE_ROOT/.build.$$"
rm -rf "$CACHE_ROOT"/.build.*        # leftovers of killed builds (we hold the lock)
mkdir -p "$BUILD/deb"
trap 'rm -rf "$BUILD"' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP

# 3a. Kernel package: download + unpack only (never installed on the host).
( cd "$BUILD/deb" && chmod 777 . && apt-get "${APT_OPTS[@]+"${APT_OPTS[@]}"}" download -q "$KPKG=$KPKG_VER" >&2 ) ||
    die "apt-get download $KPKG=$KPKG_VER failed"
deb="$(ls "$BUILD"/deb/*.deb)"
dpkg-deb -x "$deb" "$BUILD/kroot"
KROOT="$BUILD/kroot"
[ -d "$KROOT/lib/modules/$KVER" ] || die "kernel package has no lib/modules/$KVER"
vmlinuz="$KROOT/boot/vmlinuz-$KVER"
[ -f "$vmlinuz" ] || die "kernel package has no boot/vmlinuz-$KVER"
depmod -b "$KROOT" "$KVER"

# 3b. Uncompressed vmlinux (ELF with a PVH note): QEMU boots it directly, skipping the in-guest
#     decompression (~6 s under TCG). Debian 6.1 bzImages are xz-compressed, the 6.12 ones zstd.
extract_vmlinux() {
    local img="$1" out="$2" off
    for off in $(LC_ALL=C grep -abo $'\xfd7zXZ' "$img" | cut -d: -f1); do
        # (tail gets SIGPIPE when xz stops after the first stream: judge by the result only)
        { tail -c "+$((off + 1))" "$img" | xz -dc --single-stream > "$out"; } 2>/dev/null || true
        if [ -s "$out" ] && [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = "7f454c46" ]; then
            return 0
        fi
    done
    command -v zstd >/dev/null || return 1
    for off in $(LC_ALL=C grep -abo $'\x28\xb5\x2f\xfd' "$img" | cut -d: -f1); do
        # (zstd complains about the bytes after the frame: judge by the result only)
        { tail -c "+$((off + 1))" "$img" | zstd -dcq > "$out"; } 2>/dev/null || true
        if [ -s "$out" ] && [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = "7f454c46" ]; then
            return 0
        fi
    done
    return 1
}
mkdir -p "$BUILD/out"
cp "$vmlinuz" "$BUILD/out/bzImage"
if extract_vmlinux "$vmlinuz" "$BUILD/out/vmlinux"; then
    log "extracted vmlinux ($(( $(stat -c %s "$BUILD/out/vmlinux") >> 20 )) MiB)"
    ln -s vmlinux "$BUILD/out/kernel"
else
    log "WARNING: could not extract vmlinux; using the bzImage"
    rm -f "$BUILD/out/vmlinux"
    ln -s bzImage "$BUILD/out/kernel"
fi

# 3c. Initramfs tree (merged /usr layout).
R="$BUILD/root"
mkdir -p "$R"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc/nvme,proc,sys,dev,tmp,run,root,mnt,var/run}
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"

# busybox applets first, real tools override them afterwards.
cp /bin/busybox "$R/usr/bin/busybox"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$R/usr/bin/busybox" || die "/bin/busybox is not static (need busybox-static)"
while read -r applet; do
    [ -n "$applet" ] || continue
    case "$applet" in bin/*|sbin/*) applet="usr/$applet" ;; esac
    [ -e "$R/$applet" ] || ln -s /usr/bin/busybox "$R/$applet"
done < <(busybox --list-full)

copy_with_libs() {   # copy_with_libs SRC DEST_IN_ROOT
    local src="$1" dst="$2" lib
    install -D -m 0755 "$(readlink -f "$src")" "$R/$dst"
    while read -r lib; do
        [ -n "$lib" ] || continue
        [ -e "$R/$lib" ] && continue
        install -D -m 0755 "$(readlink -f "$lib")" "$R/$lib"
    done < <(ldd "$src" | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]+ \(/ {print $1}')
}
copy_with_libs /usr/sbin/nvme usr/sbin/nvme
copy_with_libs /usr/bin/fio usr/bin/fio
copy_with_libs "$(readlink -f /usr/sbin/modprobe)" usr/bin/kmod
for t in modprobe insmod rmmod lsmod modinfo depmod; do ln -sf ../bin/kmod "$R/usr/sbin/$t"; done
[ -e "$R/lib64/ld-linux-x86-64.so.2" ] || die "dynamic loader was not copied"
# Libraries outside the default search path (e.g. /usr/lib/x86_64-linux-gnu/ceph) need ld.so.cache.
find "$R/usr/lib" -name '*.so*' -printf '%h\n' | sed "s|^$R||" | sort -u > "$R/etc/ld.so.conf"
ldconfig -r "$R"

# Kernel modules (+ their modules.dep closure).
MODULES=(configfs nvme-core nvme-fabrics nvme-tcp nvmet nvmet-tcp brd
         virtio_pci virtio_net e1000 crc32c_generic crc32c-intel libcrc32c)
# 6.12: in-band authentication (nvme-auth; nvmet's side is built into nvmet with
# CONFIG_NVME_TARGET_AUTH) and what it hashes and exchanges with: hmac, sha256 (SHA-256), sha512
# (SHA-384/512) and dh_generic with the RFC 7919 ffdhe groups (CONFIG_CRYPTO_DH_RFC7919_GROUPS) -- the
# Debian 6.12 kernel has the crypto ones built in ("builtin" lines below); tls for NVMe/TCP TLS.
[ "$KFLAVOUR" = 6.12 ] && MODULES+=(nvme-auth nvme-keyring hmac sha256_generic sha512_generic dh_generic tls)
MROOT="lib/modules/$KVER"
mkdir -p "$R/usr/$MROOT"
for m in "${MODULES[@]}"; do
    modprobe --show-depends -d "$KROOT" -S "$KVER" "$m" > "$BUILD/deps.txt" ||
        die "module $m not found in $KPKG"
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue
        rel="${path#"$KROOT"/}"
        case "$rel" in
            # 6.12 ships xz-compressed modules: unpack them here, not at every modprobe under TCG.
            *.ko.xz) rel="${rel%.xz}"
                     [ -e "$R/$rel" ] || { install -d "$R/$(dirname "$rel")" && xz -dc "$path" > "$R/$rel"; } ;;
            *)       [ -e "$R/$rel" ] || install -D -m 0644 "$path" "$R/$rel" ;;
        esac
    done < "$BUILD/deps.txt"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [ -f "$KROOT/$MROOT/$f" ] && cp "$KROOT/$MROOT/$f" "$R/$MROOT/"
done
depmod -b "$R" "$KVER"
( cd "$R/$MROOT" && find kernel -name '*.ko*' | sed 's|.*/||' | sort ) > "$BUILD/out/modules.txt"
log "modules: $(tr '\n' ' ' < "$BUILD/out/modules.txt")"

# /etc and /init.
cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
echo 'root:x:0:' > "$R/etc/group"
printf '127.0.0.1 localhost\n10.0.2.2 host\n' > "$R/etc/hosts"
echo nvmet-guest > "$R/etc/hostname"
echo 'nqn.2014-08.org.nvmexpress:uuid:7b4d9a6e-1c2f-4e8a-9d3b-5a6c7e8f9012' > "$R/etc/nvme/hostnqn"
echo '7b4d9a6e-1c2f-4e8a-9d3b-5a6c7e8f9012' > "$R/etc/nvme/hostid"
install -m 0755 "$INIT_SRC" "$R/init"

# Uncompressed cpio: QEMU copies it into guest RAM; no in-guest decompression under TCG.
( cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) > "$BUILD/out/initramfs.cpio"
printf '%s\n' "$KEY_TEXT" > "$BUILD/out/key.txt"
log "initramfs: $(du -h "$BUILD/out/initramfs.cpio" | cut -f1)"

# 3d. One-off smoke boot (also decides vmlinux vs bzImage).
if [ "$SMOKE" = 1 ]; then
    smoke="$BUILD/smoke.sh"
    cat > "$smoke" <<'EOF'
set -e
test -e /sys/kernel/config/nvmet 2>/dev/null || modprobe nvmet
test -e /dev/nvme-fabrics
ip addr show eth0 | grep -q 10.0.2.15
nvme version
fio --version
echo smoke-ok
EOF
    if [ "$KFLAVOUR" = 6.12 ]; then
        # 6.12: the host side of in-band authentication is there (fabrics option, nvme-cli's key generator).
        printf '%s\n' 'grep -q dhchap_ctrl_secret /dev/nvme-fabrics' 'nvme gen-dhchap-key -n nqn.2014-08.org.nvmexpress:smoke' 'echo smoke-auth-ok' >> "$smoke"
    fi
    smoke_boot() {
        "$SCRIPT_DIR/run-guest.sh" --cache-dir "$BUILD/out" --script "$smoke" --timeout 180 \
            --console "$BUILD/smoke-console.txt" >/dev/null 2>&1
    }
    if smoke_boot; then
        log "smoke boot ok with $(readlink "$BUILD/out/kernel")"
    elif [ "$(readlink "$BUILD/out/kernel")" = vmlinux ]; then
        log "WARNING: smoke boot with vmlinux failed; retrying with the bzImage"
        tail -n 20 "$BUILD/smoke-console.txt" >&2 || true
        ln -sfn bzImage "$BUILD/out/kernel"
        rm -f "$BUILD/out/vmlinux"
        smoke_boot || { tail -n 40 "$BUILD/smoke-console.txt" >&2 || true; die "smoke boot failed"; }
        log "smoke boot ok with bzImage"
    else
        tail -n 40 "$BUILD/smoke-console.txt" >&2 || true
        die "smoke boot failed"
    fi
    cp "$BUILD/smoke-console.txt" "$BUILD/out/smoke-console.txt"
fi

touch "$BUILD/out/.complete"
rm -rf "$OUT"
mv "$BUILD/out" "$OUT"
# Drop stale builds of other keys (they are ~200 MB each); keep at most the 2 newest of this
# kernel series (a 6.12 build never evicts the 6.1 one, nor the other way round).
ls -1dt "$CACHE_ROOT/$KFLAVOUR".*/ 2>/dev/null | tail -n +3 | while read -r old; do
    [ -f "$old/.complete" ] && [ "${old%/}" != "$OUT" ] && { log "removing old cache $old"; rm -rf "$old"; }
done || true
log "built $OUT in $(( $(date +%s) - T0 )) s"
echo "$OUT"
