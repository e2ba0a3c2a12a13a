package attest

import (
	"encoding/binary"
	"hash"
)

// Template field ids (security/integrity/ima/ima_template.c,
// supported_fields[]). Each field is stored in the template data as
// u32 length (little-endian, the canonical format) | data, except in the
// original "ima" template (see templateIMA).
const (
	fieldD          = "d"            // sha1 (or md5) digest, raw: only in "ima"
	fieldN          = "n"            // name, at most 255 bytes: only in "ima"
	fieldDNG        = "d-ng"         // "algo:" NUL digest (ima_eventdigest_ng_init)
	fieldDNGv2      = "d-ngv2"       // "ima:algo:" or "verity:algo:" NUL digest
	fieldNNG        = "n-ng"         // name NUL (ima_eventname_ng_init)
	fieldSig        = "sig"          // security.ima value when it is a signature, else empty
	fieldBuf        = "buf"          // the measured buffer (ima-buf)
	fieldDModsig    = "d-modsig"     // digest without the appended signature, as d-ng, or empty
	fieldModsig     = "modsig"       // the appended PKCS#7 signature, or empty
	fieldEVMSig     = "evmsig"       // security.evm portable signature
	fieldXattrNames = "xattrnames"   // '|'-separated names
	fieldXattrLens  = "xattrlengths" // u32 lengths
	fieldXattrVals  = "xattrvalues"  // concatenated values
	fieldIUID       = "iuid"         // inode uid
	fieldIGID       = "igid"         // inode gid
	fieldIMode      = "imode"        // inode mode
)

// templates are the kernel's built-in template descriptors
// (ima_template.c, builtin_templates[]): name → fields. A list may use a
// template given by ima_template_fmt= instead; its name is then the format
// string itself, which templateFields also accepts.
var templates = map[string][]string{
	"ima":        {fieldD, fieldN},
	"ima-ng":     {fieldDNG, fieldNNG},
	"ima-ngv2":   {fieldDNGv2, fieldNNG},
	"ima-sig":    {fieldDNG, fieldNNG, fieldSig},
	"ima-sigv2":  {fieldDNGv2, fieldNNG, fieldSig},
	"ima-buf":    {fieldDNG, fieldNNG, fieldBuf},
	"ima-modsig": {fieldDNG, fieldNNG, fieldSig, fieldDModsig, fieldModsig},
	"evm-sig": {fieldDNG, fieldNNG, fieldEVMSig, fieldXattrNames, fieldXattrLens,
		fieldXattrVals, fieldIUID, fieldIGID, fieldIMode},
}

// templateIMA is the original template: its binary form has no template
// data length, the digest without a length, the name as u32 strlen | name;
// its template hash is over digest (20 bytes) | name padded with NULs to
// 256 bytes (ima_calc_field_array_hash_tfm, IMA_EVENT_NAME_LEN_MAX + 1).
const templateIMA = "ima"

const (
	imaDigestSize  = 20
	imaNameHashLen = 256 // IMA_EVENT_NAME_LEN_MAX + 1
	maxTemplateLen = 255 // longer names are not templates the kernel makes
	// maxEntryData bounds one entry's template data (the kernel's
	// ima_restore_measurement_list refuses more than MAX_TEMPLATE_DATA_LEN
	// ... we allow a generous 16 MiB: a key or policy buffer is far smaller).
	maxEntryData = 16 << 20
)

var knownFields = map[string]bool{
	fieldD: true, fieldN: true, fieldDNG: true, fieldDNGv2: true, fieldNNG: true, fieldSig: true,
	fieldBuf: true, fieldDModsig: true, fieldModsig: true, fieldEVMSig: true, fieldXattrNames: true,
	fieldXattrLens: true, fieldXattrVals: true, fieldIUID: true, fieldIGID: true, fieldIMode: true,
}

// templateFields returns the fields of a template name: a built-in
// template, or a custom format "d-ng|n-ng|..." of known fields.
func templateFields(name string) ([]string, bool) {
	if f, ok := templates[name]; ok {
		return f, true
	}
	var out []string
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '|' {
			f := name[start:i]
			if !knownFields[f] || f == fieldD || f == fieldN {
				return nil, false
			}
			out = append(out, f)
			start = i + 1
		}
	}
	return out, len(out) > 0
}

// hashTemplate writes the bytes the kernel hashes for an entry's template
// hash into h: for every field u32le(len) | data, or for "ima" the digest
// and the NUL-padded name.
func hashTemplate(h hash.Hash, e *Entry) {
	if e.Template == templateIMA && len(e.Fields) == 2 {
		h.Write(e.Fields[0])
		var name [imaNameHashLen]byte
		copy(name[:], e.Fields[1])
		h.Write(name[:])
		return
	}
	var l [4]byte
	for _, f := range e.Fields {
		binary.LittleEndian.PutUint32(l[:], uint32(len(f)))
		h.Write(l[:])
		h.Write(f)
	}
}
