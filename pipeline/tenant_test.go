package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/policy"
)

const tenantManifest = `version: 1
image:
  output: out/img.sqsh
  compression: gzip
  epoch: 0
hash: sha256
keys:
  owner-policy: {cert: pki/owner-policy.pem, key: pki/owner-policy.key}
  tenant: {cert: pki/tenant.pem, key: pki/tenant.key}
sources:
  - from: src/
    to: /
rules:
  - match: /**
    key: tenant
policy:
  - name: acme
    path: /opt/acme/etc/acme.policy
    key: KEY
    tenant: {fowner: 2001, fgroup: 2001}
    rules: |
      # acme's programs run only when signed
      RULE
`

// TestBuildTenantFragment: a tenant fragment builds when every rule is
// confined to the tenant's ids and the owner's policy key signs it; a rule
// that reaches other files, and a fragment signed with the tenant's own
// (scoped) key, fail the build at the manifest line and leave no image.
func TestBuildTenantFragment(t *testing.T) {
	const good = "appraise func=BPRM_CHECK fsmagic=0x73717368 fowner=2001 appraise_type=imasig"
	tests := []struct {
		name, key, rule string
		field           string // the manifest field the error points at
		want            []string
		wantErr         error
	}{
		{"confined", "owner-policy", good, "", nil, nil},
		{"dont_appraise", "owner-policy", "dont_appraise fsmagic=0x73717368", "rules", []string{"dont_appraise is not allowed"}, policy.ErrSyntax},
		{"no tenant condition", "owner-policy", "appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig", "rules", []string{"no tenant condition"}, policy.ErrSyntax},
		{"another tenant", "owner-policy", "appraise func=BPRM_CHECK fowner=2002 appraise_type=imasig", "rules", []string{"fowner=2002"}, policy.ErrSyntax},
		{"device hook", "owner-policy", "appraise func=POLICY_CHECK fowner=2001 appraise_type=imasig", "rules", []string{"func=POLICY_CHECK"}, policy.ErrSyntax},
		{"kernel grammar", "owner-policy", "appraise func=BPRM_CHECK fowner=2001 appraise_type=bogus", "rules", []string{"appraise_type"}, policy.ErrSyntax},
		{"signed by the tenant", "tenant", good, "key", []string{"tenant scope", "owner's policy key"}, pki.ErrOutOfScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHierarchy(t, filepath.Join(dir, "pki"))
			h.ima(t, "owner-policy", true, nil, time.Now().Add(-time.Hour), 24*time.Hour)
			h.ima(t, "tenant", true, []string{"/opt/acme/**"}, time.Now().Add(-time.Hour), 24*time.Hour)
			writeTree(t, filepath.Join(dir, "src"), []string{"opt/acme/bin/app"}, 0o755)
			text := strings.NewReplacer("KEY", tt.key, "RULE", tt.rule).Replace(tenantManifest)
			if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Load(filepath.Join(dir, "m.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Build(context.Background(), Options{Manifest: m})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				img := openImage(t, res.ImagePath)
				data, err := img.ReadFile("opt/acme/etc/acme.policy")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(data), good+"\n") {
					t.Errorf("fragment in the image:\n%s", data)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			var me *manifest.Error
			if !errors.As(err, &me) {
				t.Fatalf("error is not positioned in the manifest: %v", err)
			}
			line := 0
			for i, l := range strings.Split(text, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), tt.field+":") {
					line = i + 1
				}
				if tt.field == "rules" && strings.TrimSpace(l) == tt.rule {
					line = i + 1 // a rejected rule is reported at its own line
					break
				}
			}
			if want := fmt.Sprintf("m.yaml:%d:", line); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q is not at %s", err, want)
			}
			for _, w := range append(tt.want, `"acme"`) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
				t.Errorf("a refused build left %d files", len(ents))
			}
		})
	}
}
