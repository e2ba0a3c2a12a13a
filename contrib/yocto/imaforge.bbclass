# imaforge.bbclass: a signed, reproducible IMA image of the image rootfs,
# built by imaforge. It replaces meta-integrity's ima-evm-rootfs class:
# instead of setting security.ima on the files of ${IMAGE_ROOTFS} with
# `evmctl sign -r` (which every later image type must then carry), it adds
# the image type "imaforge", a SquashFS (or tar) image whose files carry
# their IMA signatures, with its build record beside it.
#
# In local.conf (imaforge on the build host's PATH):
#
#   HOSTTOOLS += "imaforge"
#   IMAGE_CLASSES += "imaforge"
#   IMAGE_FSTYPES += "imaforge"
#   IMAFORGE_KEY = "/keys/ima.key"        # or relic:NAME, pkcs11:URI
#   IMAFORGE_CERT = "/keys/ima.pem"
#   IMAFORGE_ROOT_CA = "/keys/root.pem"
#
# meta-integrity's IMA_EVM_PRIVKEY, IMA_EVM_X509 and IMA_EVM_ROOT_CA are the
# defaults, so a configuration made for ima-evm-rootfs works unchanged
# (drop ima-evm-rootfs from IMAGE_CLASSES). docs/integrations.md has more.
#
# The rootfs goes to imaforge as a tarball made by tar under pseudo
# (do_image runs under fakeroot): imaforge is a Go program, whose system
# calls pseudo does not see, so reading ${IMAGE_ROOTFS} directly would give
# it the build user's owners instead of the image's.

# The imaforge command.
IMAFORGE ?= "imaforge"
# Signing key and its certificate (meta-integrity's variables by default).
IMAFORGE_KEY ?= "${IMA_EVM_PRIVKEY}"
IMAFORGE_CERT ?= "${IMA_EVM_X509}"
# The root CA the certificate must chain to, and CRLs (space-separated;
# may be empty).
IMAFORGE_ROOT_CA ?= "${IMA_EVM_ROOT_CA}"
IMAFORGE_INTERMEDIATES ?= ""
IMAFORGE_CRLS ?= ""
# Image format (squashfs, tar, tar.gz, tar.zst), compression and the hash
# of the signatures.
IMAFORGE_FORMAT ?= "squashfs"
IMAFORGE_COMPRESSION ?= "zstd"
IMAFORGE_HASH ?= "sha256"
# Glob patterns (image paths) of regular files left unsigned, e.g.
# "/var/** /etc/machine-id"; every other regular file is signed.
IMAFORGE_UNSIGNED ?= ""
# Your own manifest instead of the generated one. It is copied next to the
# rootfs tarball, so its sources name "from: rootfs.tar"; its image.output
# is replaced by the deploy path.
IMAFORGE_MANIFEST ?= ""
# Every timestamp in the image.
IMAFORGE_EPOCH ?= "${SOURCE_DATE_EPOCH}"
# More flags for imaforge build.
IMAFORGE_BUILD_FLAGS ?= "--strict"

IMAGE_TYPES += "imaforge"
IMAGE_CMD:imaforge = "imaforge_build_image"

imaforge_build_image () {
	work="${WORKDIR}/imaforge"
	out="${IMGDEPLOYDIR}/${IMAGE_NAME}${IMAGE_NAME_SUFFIX}.imaforge"
	rm -rf "$work"
	mkdir -p "$work" "${IMGDEPLOYDIR}"

	# numeric owners: the image's, as pseudo reports them to tar
	tar -C "${IMAGE_ROOTFS}" --numeric-owner --sort=name -cf "$work/rootfs.tar" .

	if [ -n "${IMAFORGE_MANIFEST}" ]; then
		sed "s|^\(  output:\).*|\1 $out|" "${IMAFORGE_MANIFEST}" > "$work/firmware.yaml"
	else
		[ -n "${IMAFORGE_KEY}" ] || bbfatal "imaforge: set IMAFORGE_KEY (or meta-integrity's IMA_EVM_PRIVKEY)"
		[ -n "${IMAFORGE_CERT}" ] || bbfatal "imaforge: set IMAFORGE_CERT (or meta-integrity's IMA_EVM_X509)"
		{
			echo "version: 1"
			echo "image:"
			echo "  output: $out"
			echo "  format: ${IMAFORGE_FORMAT}"
			echo "  compression: ${IMAFORGE_COMPRESSION}"
			echo "  epoch: ${IMAFORGE_EPOCH}"
			echo "hash: ${IMAFORGE_HASH}"
			if [ -n "${IMAFORGE_ROOT_CA}" ]; then
				echo "trust:"
				echo "  roots: [${IMAFORGE_ROOT_CA}]"
				if [ -n "${IMAFORGE_INTERMEDIATES}" ]; then
					echo "  intermediates: [$(echo "${IMAFORGE_INTERMEDIATES}" | xargs | sed 's/ /, /g')]"
				fi
				if [ -n "${IMAFORGE_CRLS}" ]; then
					echo "  crls: [$(echo "${IMAFORGE_CRLS}" | xargs | sed 's/ /, /g')]"
				fi
			fi
			echo "keys:"
			echo "  ima: {cert: ${IMAFORGE_CERT}, key: ${IMAFORGE_KEY}}"
			echo "sources:"
			echo "  - from: rootfs.tar"
			echo "    to: /"
			echo "rules:"
			set -f # patterns, not file names
			for p in ${IMAFORGE_UNSIGNED}; do
				echo "  - match: '$p'"
				echo "    sign: false"
			done
			set +f
			echo "  - match: /**"
			echo "    key: ima"
		} > "$work/firmware.yaml"
	fi

	bbnote "imaforge: signing ${IMAGE_ROOTFS} into $out"
	# shellcheck disable=SC2086 # IMAFORGE_BUILD_FLAGS is several words
	"${IMAFORGE}" build ${IMAFORGE_BUILD_FLAGS} --quiet "$work/firmware.yaml" ||
		bbfatal "imaforge build failed (manifest $work/firmware.yaml)"
	rm -f "$work/rootfs.tar"
}
