#!/bin/sh
# Buildroot post-image script: a signed, reproducible IMA image of the
# target root filesystem, built by imaforge and verified, with its record.
#
# Buildroot runs each BR2_ROOTFS_POST_IMAGE_SCRIPT from its tree with the
# images directory as $1, then the words of BR2_ROOTFS_POST_SCRIPT_ARGS,
# and BINARIES_DIR, TARGET_DIR, BUILD_DIR, HOST_DIR and BR2_CONFIG in the
# environment. In the defconfig:
#
#   BR2_ROOTFS_POST_IMAGE_SCRIPT="/path/to/imaforge/contrib/buildroot/post-image.sh"
#   BR2_ROOTFS_POST_SCRIPT_ARGS="--key /keys/ima.key --cert /keys/ima.pem --root /keys/root.pem --crl /keys/root.crl"
#   BR2_TARGET_ROOTFS_TAR=y     # recommended: owners and device nodes as Buildroot's fakeroot made them
#
# Options (unknown words are left to the other post-image scripts):
#   --key KEY        signing key: a key file, relic:NAME or pkcs11:URI
#   --cert CERT      its certificate
#   --root CA        root CA certificate the key must chain to (repeatable)
#   --intermediate C owner CA certificate (repeatable)
#   --crl CRL        CRL of a CA (repeatable)
#   --manifest FILE  your own imaforge manifest instead of the generated one; it
#                    is copied beside the root filesystem, which it names
#                    "from: rootfs.tar", and its image.output is replaced
#   --compression C  gzip, zstd (default), xz, lz4 or none
#   --unsigned GLOB  image paths of regular files left unsigned (repeatable)
#
# The source is $BINARIES_DIR/rootfs.tar when Buildroot made it (its owners,
# modes and device nodes are the image's), else $TARGET_DIR owned by root
# (Buildroot's own images chown the target to 0:0 the same way). Written to
# $BINARIES_DIR: rootfs.imaforge.sqsh, its .record.json and verify.json.
set -eu

images=${1:?usage: post-image.sh IMAGES_DIR [OPTIONS]}
shift
: "${TARGET_DIR:?TARGET_DIR is not set (run from Buildroot)}"
BINARIES_DIR=${BINARIES_DIR:-$images}
IMAFORGE=${IMAFORGE:-imaforge}

# a relative file name is relative to where Buildroot runs us (its tree);
# the manifest lives elsewhere, so it gets absolute ones (relic:, pkcs11:
# references are not files and stay as they are)
abspath() {
	case $1 in
	/*) echo "$1" ;;
	*) if [ -e "$1" ]; then echo "$PWD/$1"; else echo "$1"; fi ;;
	esac
}

key='' cert='' manifest='' compression=zstd roots='' inters='' crls='' unsigned=''
while [ $# -gt 0 ]; do
	case $1 in
	--key) key=$(abspath "$2"); shift ;;
	--cert) cert=$(abspath "$2"); shift ;;
	--root) roots="$roots${roots:+, }$(abspath "$2")"; shift ;;
	--intermediate) inters="$inters${inters:+, }$(abspath "$2")"; shift ;;
	--crl) crls="$crls${crls:+, }$(abspath "$2")"; shift ;;
	--manifest) manifest=$2; shift ;;
	--compression) compression=$2; shift ;;
	--unsigned) unsigned="$unsigned $2"; shift ;;
	esac
	shift
done

work=${BUILD_DIR:-$images}/imaforge
out=$BINARIES_DIR/rootfs.imaforge.sqsh
rm -rf "$work"
mkdir -p "$work"

owner=''
if [ -f "$BINARIES_DIR/rootfs.tar" ]; then
	ln -s "$BINARIES_DIR/rootfs.tar" "$work/rootfs.tar"
	echo "imaforge: signing $BINARIES_DIR/rootfs.tar"
else
	tar -C "$TARGET_DIR" --sort=name --exclude=./THIS_IS_NOT_YOUR_ROOT_FILESYSTEM -cf "$work/rootfs.tar" .
	owner="  owner: {uid: 0, gid: 0}"
	echo "imaforge: signing $TARGET_DIR (owned by root; enable BR2_TARGET_ROOTFS_TAR for its real owners)"
fi

if [ -n "$manifest" ]; then
	sed "s|^\(  output:\).*|\1 $out|" "$manifest" > "$work/firmware.yaml"
else
	if [ -z "$key" ] || [ -z "$cert" ] || [ -z "$roots" ]; then
		echo "post-image.sh: give --key, --cert and --root (or --manifest)" >&2
		exit 2
	fi
	{
		echo "version: 1"
		echo "image:"
		echo "  output: $out"
		echo "  compression: $compression"
		echo "  epoch: 0                  # SOURCE_DATE_EPOCH overrides it"
		[ -z "$owner" ] || echo "$owner"
		echo "trust:"
		echo "  roots: [$roots]"
		[ -z "$inters" ] || echo "  intermediates: [$inters]"
		[ -z "$crls" ] || echo "  crls: [$crls]"
		echo "keys:"
		echo "  ima: {cert: $cert, key: $key}"
		echo "sources:"
		echo "  - from: rootfs.tar"
		echo "    to: /"
		echo "rules:"
		set -f # patterns, not file names
		for p in $unsigned; do
			echo "  - match: '$p'"
			echo "    sign: false"
		done
		set +f
		echo "  - match: /**"
		echo "    key: ima"
	} > "$work/firmware.yaml"
fi

"$IMAFORGE" build --strict --quiet "$work/firmware.yaml"
# verify with the trust the manifest names, and keep the report beside the record
if [ -z "$manifest" ]; then
	set -- --cert "$cert"
	for f in $(echo "$roots" | tr -d ','); do set -- "$@" --root "$f"; done
	for f in $(echo "$inters" | tr -d ','); do set -- "$@" --intermediate "$f"; done
	for f in $(echo "$crls" | tr -d ','); do set -- "$@" --crl "$f"; done
	"$IMAFORGE" verify --json "$@" "$out" > "$BINARIES_DIR/rootfs.imaforge.verify.json"
fi
rm -f "$work/rootfs.tar"
echo "imaforge: $out (record $out.record.json)"
