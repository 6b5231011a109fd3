#!/usr/bin/env bash
# Builds out/mossaicfs_<version>_<arch>.deb with dpkg-deb from a release binary linked with the
# Swift runtime statically (so the package needs only Debian's libraries), and prints its path.
# The package's identity (Maintainer, Homepage) comes from packaging/metadata, its version from
# packaging/debian/changelog (whose upstream part must be the binary's --version).
# An existing .deb newer than everything it is made of is kept (`make deb` is then a no-op).
# Usage: packaging/build-deb.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$1
. packaging/metadata

# "mossaicfs (0.1.0-1) unstable; …": the Debian version, and its upstream part.
version=$(sed -n '1s/^mossaicfs (\([^)]*\)).*/\1/p' packaging/debian/changelog)
upstream=${version%-*}
built=$("$binary" --version | awk '{print $2}')
if [ "$upstream" != "$built" ]; then
  echo "packaging/debian/changelog is at $version, but $binary is version $built: add a changelog entry" >&2
  exit 1
fi
arch=$(dpkg --print-architecture)
deb="out/mossaicfs_${version}_${arch}.deb"
inputs=("$binary" "$0" packaging/metadata packaging/debian/* packaging/examples/* man/mossaicfs.8 README.md)
if [ -f "$deb" ] && [ -z "$(find "${inputs[@]}" -newer "$deb" -print -quit)" ]; then
  echo "$deb"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fill() {
  sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$MAINTAINER|" \
      -e "s|@HOMEPAGE@|$HOMEPAGE|" -e "s|@SIZE@|${size:-}|" -e '/^Homepage: $/d' "$1"
}

install -D -m 0755 "$binary" "$root/usr/bin/mossaicfs"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/mossaicfs"
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
doc="$root/usr/share/doc/mossaicfs"
install -d "$doc/examples"
install -m 0644 packaging/examples/* "$doc/examples/"
install -m 0644 README.md "$doc/README.md"
fill packaging/debian/copyright > "$doc/copyright"
fill packaging/debian/changelog | gzip -9n > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.Debian.gz"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/mossaicfs"

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
fill packaging/debian/control.in > "$root/DEBIAN/control"
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
mkdir -p out
dpkg-deb --root-owner-group --build "$root" "$deb.tmp" >/dev/null
mv "$deb.tmp" "$deb"
echo "$deb"
