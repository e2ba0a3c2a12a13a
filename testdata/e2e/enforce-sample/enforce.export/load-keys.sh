#!/bin/sh
# load-keys.sh: load the certificates of an imaforge PKI export into the
# kernel's keyrings, in hierarchy order. Written by `imaforge pki export`;
# regenerate it rather than editing it.
#
# Usage: load-keys.sh [--user | --system]
#
# --user (default): for a kernel whose .ima keyring is not compiled in
#   (no CONFIG_INTEGRITY_TRUSTED_KEYRING; Debian's 6.1). Three keyrings under
#   $KEYRING (default @u, the user keyring IMA searches for "_ima"):
#     imaforge-mfr    the manufacturer roots, then locked (no more adds)
#     imaforge-owner  restricted to certificates a root signed: owner CAs
#     _ima            restricted to certificates signed by a key in
#                     imaforge-owner: the IMA certificates, then frozen
#                     (keyctl setperm 0x0b0b0000: no adds, unlinks or setperm)
#   The kernel checks every certificate's signature as it enters a
#   restricted keyring (EKEYREJECTED, ENOKEY, EINVAL: the script stops).
#   It checks neither dates nor, before Linux 6.4, CA flags and key usage:
#   imaforge checked those when it exported (see export.json).
#
# --system: for a kernel with CONFIG_INTEGRITY_TRUSTED_KEYRING and
#   CONFIG_SECONDARY_TRUSTED_KEYRING, built with
#   CONFIG_SYSTEM_TRUSTED_KEYS=trusted-keys.pem (the roots) and, when present,
#   CONFIG_SYSTEM_BLACKLIST_HASH_LIST=blacklist-hashes.txt. Owner CAs go to
#   .secondary_trusted_keys, IMA certificates to .ima; the kernel accepts
#   them only if signed by a built-in or secondary key.
#
# Revoked certificates (and those issued by a revoked CA) are not in this
# export; the kernel cannot be told at run time (user space cannot add to
# .blacklist), so a revoked key stays out by not being loaded, and for good
# by the kernel's compiled-in blacklist.
set -eu

HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
KEYRING=${KEYRING:-@u}

ROOTS="certs/01-root-e2e-manufacturer.der"
OWNER_CAS=""
IMA_CERTS="certs/02-ima-e2e-ima.der"
# An IMA certificate signed by a root directly needs the roots in the owner
# keyring too (a root verifies itself against imaforge-mfr).
ROOT_SIGNED_IMA=1

die() { echo "load-keys: $*" >&2; exit 1; }

add() { # add KEYRING FILE
	keyctl padd asymmetric '' "$1" <"$HERE/$2" >/dev/null ||
		die "keyring $1 refused $2"
}

case "${1:---user}" in
--user)
	command -v keyctl >/dev/null || die "keyctl not found (keyutils)"
	if keyctl search "$KEYRING" keyring _ima >/dev/null 2>&1; then
		die "a _ima keyring is already in $KEYRING: keys were loaded before"
	fi
	MFR=$(keyctl newring imaforge-mfr "$KEYRING") || die "cannot create imaforge-mfr"
	for f in $ROOTS; do add "$MFR" "$f"; done
	keyctl restrict_keyring "$MFR" || die "cannot lock imaforge-mfr"
	OWN=$(keyctl newring imaforge-owner "$KEYRING") || die "cannot create imaforge-owner"
	keyctl restrict_keyring "$OWN" asymmetric "key_or_keyring:$MFR" || die "cannot restrict imaforge-owner"
	if [ "$ROOT_SIGNED_IMA" = 1 ]; then
		for f in $ROOTS; do add "$OWN" "$f"; done
	fi
	for f in $OWNER_CAS; do add "$OWN" "$f"; done
	IMA=$(keyctl newring _ima "$KEYRING") || die "cannot create _ima"
	keyctl restrict_keyring "$IMA" asymmetric "key_or_keyring:$OWN" || die "cannot restrict _ima"
	for f in $IMA_CERTS; do add "$IMA" "$f"; done
	keyctl setperm "$IMA" 0x0b0b0000 || die "cannot freeze _ima"
	;;
--system)
	for f in $OWNER_CAS; do add %:.secondary_trusted_keys "$f"; done
	for f in $IMA_CERTS; do add %:.ima "$f"; done
	;;
-h | --help)
	sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	;;
*)
	echo "usage: $0 [--user | --system]" >&2
	exit 2
	;;
esac
