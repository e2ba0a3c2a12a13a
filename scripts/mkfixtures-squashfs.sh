#!/usr/bin/env bash
# Regenerates the SquashFS reader fixtures in testdata/squashfs/ with mksquashfs
# (squashfs-tools 4.5.1). Run from the project root, as root (device nodes,
# owners and trusted.*/security.* xattrs need it):
#
#	scripts/mkfixtures-squashfs.sh
#
# It builds one small, awkward source tree (every inode type, hard links, a
# sparse file, a directory big enough for a directory index, xattrs of every
# prefix including a repeated long value that mksquashfs stores out of line)
# and packs it once per compressor and layout. The golden files next to the
# images come from the peers, never from imaforge:
#
#	tree.lln     unsquashfs -lln -UTC -d '' (the listing of every image but
#	             tree-plain, whose directory sizes differ: tree-plain.lln)
#	tree.sha256  sha256sum of every regular file of the source tree
#	tree.xattrs  getfattr -R -h -d -m - -e hex of the source tree
#
# The reader tests (squashfs/reader_fixture_test.go) compare our reader with
# these for every image, so a change here must keep the images small (each
# well under 100 KB) and regenerate all goldens together.
set -euo pipefail
export LC_ALL=C TZ=UTC

out=testdata/squashfs
[ -d squashfs ] || { echo "run from the project root" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root (devices, owners, trusted./security. xattrs)" >&2; exit 2; }
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkfixtures-squashfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src=$tmp/tree

# bytes N SEED: N deterministic, incompressible bytes (AES-CTR keystream).
bytes() {
  head -c "$1" /dev/zero | openssl enc -aes-128-ctr -nosalt \
    -K "$(printf '%032x' "$2")" -iv 00000000000000000000000000000000
}

mkdir -p "$src"/{dir/sub,empty-dir,bigdir,sticky}
: >"$src/empty-file"
printf 'hello, squashfs\n' >"$src/hello.txt"
bytes 4096 1 >"$src/one-block"                   # exactly one 4 KiB block
bytes 4097 2 >"$src/one-block-plus-one"          # one block and a 1-byte tail
bytes 10000 3 >"$src/dir/three-blocks-tail"       # 2 blocks + tail fragment
(set +o pipefail; yes 'integrity measurement architecture' | head -c 20000) >"$src/dir/compressible"
bytes 3000 4 >"$src/dir/sub/setuid"; chmod 4755 "$src/dir/sub/setuid"
bytes 3000 5 >"$src/dir/sub/setgid"; chmod 2750 "$src/dir/sub/setgid"
chmod 1777 "$src/sticky"
# sparse: 64 KiB, data only in block 4 and at the very end (blocks of zeros
# become sparse blocks in the image)
truncate -s 65536 "$src/sparse"
bytes 1000 6 | dd of="$src/sparse" bs=1 seek=16384 conv=notrunc status=none
printf 'end' | dd of="$src/sparse" bs=1 seek=65533 conv=notrunc status=none
# duplicates: stored once by mksquashfs
bytes 9000 7 >"$src/dup-a"; cp "$src/dup-a" "$src/dir/dup-b"
# hard links
ln "$src/hello.txt" "$src/dir/hardlink-to-hello"
ln "$src/hello.txt" "$src/dir/sub/hardlink-2"
# names
printf 'long name\n' >"$src/$(printf 'n%.0s' $(seq 255))"
printf 'utf-8 name\n' >"$src/café-文件"
printf 'latin-1 name\n' >"$src/$(printf 'latin1-\xe9')"
printf 'spaces\n' >"$src/with space"
# a directory whose listing spans several metadata blocks (directory index)
for i in $(seq -w 1 400); do printf '%s\n' "$i" >"$src/bigdir/entry-with-a-longish-name-$i"; done
# symlinks
ln -s hello.txt "$src/rel-link"
ln -s /etc/hostname "$src/abs-link"
ln -s does/not/exist "$src/dangling-link"
ln -s ../hello.txt "$src/dir/up-link"
ln -s "$(printf 'l%.0s' $(seq 1000))" "$src/long-target-link"
# special files
mknod "$src/char-dev" c 1 3
mknod "$src/block-dev" b 7 0
mknod "$src/big-minor-dev" c 4 300
mkfifo "$src/fifo"
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$src/socket"
# owners
chown 1000:1000 "$src/hello.txt"
chown 65534:100 "$src/dir/sub"
chown -h 4242:4243 "$src/rel-link"
chown 123456:654321 "$src/dir/compressible"
# xattrs: every prefix, on files, a directory, a symlink and a device; one
# long value repeated (mksquashfs stores repeats out of line)
long=0x$(bytes 300 8 | od -An -v -tx1 | tr -d ' \n')
setfattr -n user.comment -v "a user xattr" "$src/hello.txt"
setfattr -n trusted.overlay.opaque -v y "$src/dir"
setfattr -n security.ima -v 0x0404deadbeef "$src/one-block"
setfattr -n security.ima -v "$long" "$src/one-block-plus-one"
setfattr -n security.ima -v "$long" "$src/dir/three-blocks-tail"
setfattr -n security.ima -v "$long" "$src/sparse"
setfattr -n user.empty "$src/dup-a"
setfattr -n user.binary -v 0x00ff00ff "$src/dup-a"
setfattr -h -n trusted.link -v symlink-xattr "$src/abs-link"
setfattr -n trusted.dev -v 1 "$src/char-dev"
for i in $(seq 1 20); do setfattr -n "user.many$i" -v "value $i" "$src/dir/sub/setuid"; done
# times: distinct, fixed; directories last so creating entries does not move them
i=0
while IFS= read -r -d '' p; do
  i=$((i + 1))
  touch -h -d "@$((1700000000 + i * 3607))" "$p"
done < <(find "$src" -mindepth 1 -print0 | sort -z)
touch -d @1600000000 "$src"

mk() { # mk NAME ARGS...: pack the tree into $out/NAME.sqsh
  local name=$1; shift
  mksquashfs "$src" "$out/$name.sqsh" -noappend -no-progress -quiet -mkfs-time 1234567890 \
    -b 4096 "$@" >/dev/null
}
mk tree-gzip -comp gzip
mk tree-zstd -comp zstd
mk tree-xz -comp xz
mk tree-lz4 -comp lz4 -Xhc
mk tree-lzo -comp lzo
mk tree-lzma -comp lzma
# gzip with non-default options (a compressor-options record), no export table
mk tree-gzip-opts -comp gzip -Xcompression-level 1 -Xwindow-size 10 -no-exports
# nothing compressed, no fragments (tails are short data blocks), no xattrs
mk tree-plain -comp gzip -noI -noId -noD -noF -noX -no-fragments -no-xattrs
# xz with the x86 BCJ filter (a compressor-options record)
mk tree-xz-bcj -comp xz -Xbcj x86

# minimal reproductions of go-diskfs v1.9.4 reader failures (see
# squashfs/reader_diskfs_test.go): a file with 20 xattrs, and any lz4 image
# (go-diskfs expects LZ4 frames; squashfs stores raw LZ4 blocks)
rm -rf "$tmp/x" && mkdir "$tmp/x" && printf 'x\n' >"$tmp/x/f"
for i in $(seq 1 20); do setfattr -n "user.many$i" -v "value $i" "$tmp/x/f"; done
mksquashfs "$tmp/x" "$out/diskfs-many-xattrs.sqsh" -noappend -no-progress -quiet -comp gzip \
  -mkfs-time 0 -all-time 0 -all-root >/dev/null
mksquashfs "$tmp/x" "$out/diskfs-lz4.sqsh" -noappend -no-progress -quiet -comp lz4 -no-xattrs \
  -mkfs-time 0 -all-time 0 -all-root >/dev/null

# tiny images (one of each inode type, xattrs in and out of line, a fragment,
# a sparse block, a directory index) as fuzzing seeds: small inputs mutate well
t=$tmp/tiny; mkdir -p "$t/d"
printf 'tiny\n' >"$t/d/f"; bytes 9000 9 >"$t/blocks"; truncate -s 12288 "$t/sparse"
printf 'x' | dd of="$t/sparse" bs=1 seek=12000 conv=notrunc status=none
ln -s d/f "$t/l"; ln "$t/d/f" "$t/h"; mknod "$t/c" c 1 3; mkfifo "$t/p"
for i in $(seq 1 100); do : >"$t/d/entry-with-quite-a-long-name-number-$i-padding-padding-padding-padding-padding"; done
setfattr -n user.a -v "$long" "$t/d/f"; setfattr -n user.b -v "$long" "$t/blocks"; setfattr -n trusted.t -v 1 "$t/d"
for c in gzip zstd xz lz4 lzo lzma; do
  mksquashfs "$t" "$out/tiny-$c.sqsh" -noappend -no-progress -quiet -comp "$c" -b 4096 \
    -mkfs-time 0 -all-time 0 -all-root >/dev/null
done

unsquashfs -lln -UTC -d '' "$out/tree-gzip.sqsh" >"$out/tree.lln"
# directory sizes depend on the layout: the plain image gets its own listing
unsquashfs -lln -UTC -d '' "$out/tree-plain.sqsh" >"$out/tree-plain.lln"
for f in "$out"/tree-*.sqsh; do
  case $f in */tree-plain.sqsh) continue ;; esac
  unsquashfs -lln -UTC -d '' "$f" | cmp -s - "$out/tree.lln" || { echo "$f: listing differs from tree.lln" >&2; exit 1; }
done
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$out/tree.sha256"
(cd "$src" && getfattr -R -h -d -m - -e hex . 2>/dev/null) >"$out/tree.xattrs"
ls -l "$out"
