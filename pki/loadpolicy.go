package pki

import (
	"bytes"
	_ "embed"
	"text/template"
)

//go:embed load-policy.sh.tmpl
var loadPolicyTemplate string

var loadPolicyTmpl = template.Must(template.New("load-policy.sh").Parse(loadPolicyTemplate))

// PolicySigners returns the certificates of an export that may sign tenant
// policy fragments: IMA certificates issued by an owner CA of the export
// and without a tenant scope, the owner's own policy keys. A tenant's key
// (one with a scope) signs the tenant's files, never rules about them, and
// a key the manufacturer's root issued directly is the base system's.
func PolicySigners(res *ExportResult) []ExportedCert {
	owners := map[string]bool{}
	for _, c := range res.Loaded {
		if c.Role == RoleOwnerCA.String() {
			owners[c.Subject] = true
		}
	}
	var out []ExportedCert
	for _, c := range res.Loaded {
		if c.Role == RoleIMA.String() && len(c.Scope) == 0 && owners[c.Issuer] {
			out = append(out, c)
		}
	}
	return out
}

// LoadPolicyScript renders load-policy.sh for an export: the device-side
// loader that checks a tenant image's policy fragment (signer, signature,
// confinement to the tenant's ids) and appends it to the kernel's policy.
func LoadPolicyScript(res *ExportResult) ([]byte, error) {
	var b bytes.Buffer
	err := loadPolicyTmpl.Execute(&b, map[string]any{"Signers": PolicySigners(res)})
	return b.Bytes(), err
}
