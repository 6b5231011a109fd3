#!/usr/bin/env bash
# Builds out/mossaicfs_<version>_<arch>.deb with dpkg-deb from a release binary linked with the
# Swift runtime statically (so the package needs only Debian's libraries).
# Usage: packaging/build-deb.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$1
version=$("$binary" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$binary" "$root/usr/bin/mossaicfs"
strip --strip-unneeded "$root/usr/bin/mossaicfs"
# mount(8) runs /sbin/mount.fuse.mossaicfs for type fuse.mossaicfs: our own helper, so that
# mounting does not depend on mount.fuse3 finding mossaicfs in a sanitised PATH.
# umount(8) runs /sbin/umount.fuse.mossaicfs for such mounts: `mossaicfs umount`, which returns
# once the daemon has stored everything and exited (umount(2) alone returns before that).
install -d "$root/usr/sbin"
ln -s ../bin/mossaicfs "$root/usr/sbin/mount.fuse.mossaicfs"
ln -s ../bin/mossaicfs "$root/usr/sbin/umount.fuse.mossaicfs"
install -D -m 0644 man/mossaicfs.8 "$root/usr/share/man/man8/mossaicfs.8"
gzip -9n "$root/usr/share/man/man8/mossaicfs.8"
ln -s mossaicfs.8.gz "$root/usr/share/man/man8/mount.fuse.mossaicfs.8.gz"
ln -s mossaicfs.8.gz "$root/usr/share/man/man8/umount.fuse.mossaicfs.8.gz"
install -d "$root/usr/share/doc/mossaicfs/examples"
install -m 0644 packaging/examples/* "$root/usr/share/doc/mossaicfs/examples/"
install -m 0644 README.md "$root/usr/share/doc/mossaicfs/README.md"

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control.in > "$root/DEBIAN/control"
mkdir -p out
deb="out/mossaicfs_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
