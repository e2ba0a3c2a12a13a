package pipeline

import "github.com/imaforge/imaforge/internal/jsonrecord"

// RecordFormat names the build record's schema; it changes when a field
// changes meaning.
const RecordFormat = "imaforge-build-record/v1"

// Record is the build record written next to the image
// (IMAGE.record.json). It holds no time, host name or absolute path, so the
// same inputs give the same record bytes.
type Record struct {
	Format   string         `json:"format"`
	Tool     RecordTool     `json:"tool"`
	Manifest RecordManifest `json:"manifest"`
	Image    RecordImage    `json:"image"`
	Hash     string         `json:"hash"`
	// Reproducible says whether every key used signs deterministically, so
	// that a rebuild gives the same bytes.
	Reproducible bool         `json:"reproducible"`
	Keys         []RecordKey  `json:"keys"`
	Files        []RecordFile `json:"files"`
	// Policy lists the signed IMA policy fragments; they are in the image
	// and, with detached signatures, in IMAGE.policy/.
	Policy []RecordPolicy `json:"policy,omitempty"`
	// Verity describes the dm-verity hash tree appended to the image
	// (image.verity; docs/integrity.md).
	Verity *RecordVerity `json:"verity,omitempty"`
	// Signature describes the detached CMS signatures beside the image
	// (image.signature_key).
	Signature *RecordSignature `json:"signature,omitempty"`
}

// RecordPolicy is one policy fragment of the image.
type RecordPolicy struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Key    string `json:"key"`
	KeyID  string `json:"key_id"`
}

// RecordTool names the program that built the image.
type RecordTool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// RecordManifest identifies the manifest by name and content.
type RecordManifest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// RecordImage describes the image file.
type RecordImage struct {
	Name string `json:"name"`
	// Format is image.format when it is not squashfs (tar, tar.gz,
	// tar.zst); Compression and BlockSize are then empty.
	Format      string `json:"format,omitempty"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	Compression string `json:"compression"`
	Level       int    `json:"level"`
	BlockSize   int    `json:"block_size"`
	Epoch       int64  `json:"epoch"`
}

// RecordKey describes a signing key used by the build.
type RecordKey struct {
	Name          string `json:"name"`
	KeyID         string `json:"key_id"`
	Subject       string `json:"subject"`
	CertSHA256    string `json:"cert_sha256"`
	Deterministic bool   `json:"deterministic"`
	Files         int    `json:"files"`
	Signatures    int    `json:"signatures"`
	// Precomputed names the files the key's signatures came from in a
	// build from a ceremony response or evmctl output (build
	// --signatures): their digests and, for a response, the request's and
	// the response's own digests.
	Precomputed []SignatureSource `json:"precomputed,omitempty"`
}

// RecordFile is one regular file of the image. Key and KeyID are empty for a
// file its rule leaves unsigned.
type RecordFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
	Key    string `json:"key,omitempty"`
	KeyID  string `json:"key_id,omitempty"`
	// EVMKey names the key of the file's portable security.evm, if any.
	EVMKey string `json:"evm_key,omitempty"`
}

// Marshal encodes the record as indented JSON with a final newline.
func (r *Record) Marshal() ([]byte, error) { return jsonrecord.Marshal(r) }

// RecordVerity is the dm-verity hash tree of the image: the image file is
// the data device (its first DataBlocks 4 KiB blocks, the SquashFS image)
// and the hash device (from HashOffset: veritysetup's superblock, then the
// tree). `veritysetup verify IMAGE IMAGE ROOT --hash-offset HASH_OFFSET`.
type RecordVerity struct {
	Hash          string `json:"hash"`
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	DataBlocks    uint64 `json:"data_blocks"`
	DataSize      uint64 `json:"data_size"`
	HashOffset    uint64 `json:"hash_offset"`
	HashSize      uint64 `json:"hash_size"`
	Salt          string `json:"salt"`
	UUID          string `json:"uuid"`
	RootHash      string `json:"root_hash"`
}

// RecordSignature names the key of the image's CMS signatures and the files
// written (relative to the image's directory).
type RecordSignature struct {
	Key   string   `json:"key"`
	KeyID string   `json:"key_id"`
	Files []string `json:"files"`
}
