// Package ceremony implements the offline signing ceremony: the build
// machine, which has the sources but no key, writes a signing request; the
// ceremony machine, which has the key (an HSM) but no sources, signs the
// request's digests into a response; the build machine assembles the image
// from the response. Files are the only channel between the two.
//
// # Signing request (imaforge-signing-request/1, JSON)
//
//	{
//	  "format": "imaforge-signing-request/1",
//	  "tool": "imaforge v1.2.3",
//	  "image": "firmware.sqsh",                 // the manifest's output name
//	  "manifest": {"name": "firmware.yaml", "sha256": "<hex>"},
//	  "hash": "sha256",                         // digest algorithm (kernel name)
//	  "files": 15000,                           // regular files in the image
//	  "keys": [{
//	    "name": "manufacturer",                 // the manifest's key name
//	    "ref": "relic:ima",                     // the manifest's key reference, when it names a token
//	    "key_id": "431c2174",                   // IMA key id (SKID tail)
//	    "cert_sha256": "<hex>",                 // SHA-256 of the certificate DER
//	    "subject": "CN=...",
//	    "cert": "<base64 DER>",
//	    "files": 14000,                         // files this key signs
//	    "digests": ["<hex>", ...],              // the unique digests, sorted
//	    "paths": {"<hex>": ["/bin/sh", ...]}    // for review: each digest's image paths, sorted
//	  }],
//	  "policy": [{"name": "base", "path": "/etc/ima/policy.d/base",   // IMA policy fragments,
//	              "key": "manufacturer", "digest": "<hex>"}],         // each also among its key's digests
//	  "request_sha256": "<hex>"
//	}
//
// # Signing response (imaforge-signing-response/1, JSON)
//
//	{
//	  "format": "imaforge-signing-response/1",
//	  "tool": "imaforge v1.2.3",
//	  "request_sha256": "<hex>",                // the request signed
//	  "manifest": {...}, "image": "...", "hash": "sha256",   // copied from the request
//	  "keys": [{
//	    "name": "manufacturer", "key_id": "...", "cert_sha256": "...",
//	    "token": {"type": "pkcs11", "token": "hsm", "label": "fw", "key": "ima", ...},
//	    "signatures": [{"digest": "<hex>", "ima": "<hex security.ima value>"}]
//	  }],
//	  "response_sha256": "<hex>"
//	}
//
// Each document names its own digest: request_sha256 (response_sha256) is
// the SHA-256 of the document's compact JSON encoding (encoding/json, fields
// in the order above) with that field empty and so omitted. Reading a
// document recomputes it, so a document altered after it was written is
// refused. The digest detects accidents and gives the operator one value to
// compare by voice; it is not what makes a response trustworthy: the build
// verifies every signature against the manifest's certificate.
//
// # Journal (imaforge-ceremony-journal/1, JSON lines)
//
// While signing, every verified signature is appended to RESPONSE.journal
// as one line {"key":..,"digest":..,"ima":..} after a header line
// {"format":"imaforge-ceremony-journal/1","request_sha256":..}. A ceremony
// killed part-way keeps every signature made (a torn last line is
// dropped); run again, it verifies and reuses them, signing only the rest.
// Each line is one write(2), so a killed process loses nothing; the file is
// synced every 64 lines, so a crash of the machine itself can lose (and a
// rerun sign again) at most the last 63. The journal is removed once the
// response is written.
//
// # Audit transcript (JSON lines, hash-chained)
//
// Each ceremony appends AuditRecords to the audit file, which is only ever
// appended to: a "started" record (operator, host, request digest, tokens
// as configured and as they report themselves, keys, sessions) after the
// keys are opened and confirmed and before the first signature, and an end
// record ("complete" with the response digest, "declined", or "failed:
// <error>", with start and end times and counts) naming the started record
// by its SHA-256. Each record carries seq (its line number) and
// prev_sha256, the SHA-256 of the previous line, so an altered, inserted
// or removed record breaks the chain (VerifyAudit; `imaforge ceremony audit
// verify`). Removing the newest records leaves a shorter valid chain: the
// head printed after each ceremony, written down, reveals it. A transcript
// that cannot be written, or whose chain is broken, stops a ceremony
// before any key is opened (Run); a started record with no end record is
// a ceremony that was killed.
//
// # Lock
//
// Run holds flock(2) on RESPONSE.lock (which names the holder: pid, host,
// operator, start time, request) for the whole ceremony: a second
// ceremony on the same response is refused with a *LockedError.
//
// # evmctl sign_hash
//
// For ceremony machines that trust evmctl: WriteSums writes "DIGEST  NAME"
// lines (sha256sum style) that `evmctl sign_hash` reads; ParseSignHash reads
// its output, each line with the hex security.ima value appended
// (ima-evm-utils src/evmctl.c, cmd_sign_hash).
package ceremony
