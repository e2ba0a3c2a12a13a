package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/policy"
)

const policySection = `kernel: "6.1"
policy:
  - name: acme
    path: /etc/ima/policy.d/50-acme.policy
    key: manufacturer
    presets: [squashfs-exec]
    rules: |
      # the tenant's own rule
      %s
`

func TestBuildPolicyFragment(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
	text := fmt.Sprintf(manifestTmpl, "gzip", "src") +
		fmt.Sprintf(policySection, "measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig")
	m := p.manifest(t, "", "", text)
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	const fragPath = "/etc/ima/policy.d/50-acme.policy"
	img := openImage(t, res.ImagePath)
	inImage, err := img.ReadFile(fragPath[1:])
	if err != nil {
		t.Fatal(err)
	}
	// The fragment is valid policy for the kernel, with the written rule and
	// the preset's rules.
	if err := policy.Errors(policy.Lint("frag", inImage, mustVersion(t, "6.1"))); err != nil {
		t.Errorf("fragment in the image does not lint: %v", err)
	}
	for _, want := range []string{"template=ima-sig", "appraise func=BPRM_CHECK", "fsmagic=0x73717368", "appraise_type=imasig"} {
		if !bytes.Contains(inImage, []byte(want)) {
			t.Errorf("fragment lacks %q:\n%s", want, inImage)
		}
	}
	value := imaXattr(t, img, fragPath)
	digest, _ := imasig.DigestReader(imasig.SHA256, bytes.NewReader(inImage))
	if err := imasig.Verify(value, digest, p.mfr.Cert); err != nil {
		t.Errorf("fragment signature: %v", err)
	}

	// Beside the image: the same bytes and the detached signature.
	dir := res.ImagePath + ".policy"
	standalone, err := os.ReadFile(filepath.Join(dir, "50-acme.policy"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, "50-acme.policy.sig"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(standalone, inImage) || !bytes.Equal(sig, value) {
		t.Error("the standalone fragment or its signature differs from the image's")
	}
	if len(res.Record.Policy) != 1 || res.Record.Policy[0].Path != fragPath || res.Record.Policy[0].Key != "manufacturer" {
		t.Errorf("record policy: %+v", res.Record.Policy)
	}

	// evmctl is the judge of the detached signature.
	evmctl := testenv.NeedTool(t, "evmctl")
	if out, err := exec.Command(evmctl, "ima_verify", "--sigfile", "--key", p.mfr.DERPath,
		filepath.Join(dir, "50-acme.policy")).CombinedOutput(); err != nil {
		t.Errorf("evmctl rejects the fragment: %v\n%s", err, out)
	}
}

// TestBuildPolicyRejected: a rule the target kernel would refuse fails the
// build, naming the fragment, and leaves nothing behind.
func TestBuildPolicyRejected(t *testing.T) {
	for _, tt := range []struct{ kernel, rule, want string }{
		{"6.1", "appraise func=BPRM_CHECK appraise_type=bogus", "appraise_type"},
		{"6.1", "measure func=NO_SUCH_HOOK", "NO_SUCH_HOOK"},
		// digest_type=verity arrived in 6.0
		{"5.15", "appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3", "digest_type"},
	} {
		t.Run(tt.rule, func(t *testing.T) {
			p := newProject(t)
			writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
			text := fmt.Sprintf(manifestTmpl, "gzip", "src") + fmt.Sprintf(policySection, tt.rule)
			text = strings.Replace(text, `kernel: "6.1"`, `kernel: "`+tt.kernel+`"`, 1)
			m := p.manifest(t, "", "", text)
			_, err := build(t, m, 0)
			if err == nil {
				t.Fatal("build with a rejected rule succeeded")
			}
			var me *manifest.Error
			if !errors.As(err, &me) || !errors.Is(err, policy.ErrSyntax) {
				t.Fatalf("error is not positioned in the manifest: %v", err)
			}
			// The rule's own line and a column inside it (was: the
			// fragment's `- name:` line, and a position in the rendered
			// fragment, a file that was never written).
			var line, col int
			for i, l := range strings.Split(text, "\n") {
				if c := strings.Index(l, tt.rule); c >= 0 {
					line, col = i+1, c+1
				}
			}
			if me.Pos.Line != line || me.Pos.Col < col || me.Pos.Col >= col+len(tt.rule) {
				t.Errorf("error at %s, want line %d, a column in %d..%d: %v", me.Pos, line, col, col+len(tt.rule)-1, err)
			}
			if strings.Contains(err.Error(), "50-acme.policy:") {
				t.Errorf("error names the generated fragment: %v", err)
			}
			for _, w := range []string{"acme", tt.want} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			assertNoOutput(t, p)
		})
	}
}

func mustVersion(t *testing.T, s string) policy.Version {
	t.Helper()
	v, err := policy.ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRecordSignatureCounts: a key's "signatures" in the record is the
// number of distinct digests among the regular files it signs, whether or
// not a policy fragment has the same content (the build counts them from
// the sign pool, which also signed the fragment, not from each file's
// result, which it drops once the file is sealed).
func TestRecordSignatureCounts(t *testing.T) {
	var fragment []byte
	for _, withCopy := range []bool{false, true} {
		t.Run(fmt.Sprint("copy=", withCopy), func(t *testing.T) {
			p := newProject(t)
			src := filepath.Join(p.dir, "src")
			writeTree(t, src, sortedPaths(false), 0o755)
			if withCopy { // a regular file with the fragment's bytes
				if err := os.WriteFile(filepath.Join(src, "usr", "frag-copy"), fragment, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			text := fmt.Sprintf(manifestTmpl, "gzip", "src") +
				fmt.Sprintf(policySection, "measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig")
			res, err := build(t, p.manifest(t, "", "", text), 0)
			if err != nil {
				t.Fatal(err)
			}
			img := openImage(t, res.ImagePath)
			if fragment, err = img.ReadFile("etc/ima/policy.d/50-acme.policy"); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(res.RecordPath)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := ParseRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			distinct := map[string]map[string]bool{}
			for _, f := range rec.Files {
				if f.Key != "" {
					if distinct[f.Key] == nil {
						distinct[f.Key] = map[string]bool{}
					}
					distinct[f.Key][f.Digest] = true
				}
			}
			if withCopy && !distinct["manufacturer"][rec.Policy[0].Digest] {
				t.Fatal("the copy of the fragment is not a file the manufacturer signs")
			}
			for _, k := range rec.Keys {
				if k.Signatures != len(distinct[k.Name]) {
					t.Errorf("key %s: %d signatures, want %d (distinct digests)", k.Name, k.Signatures, len(distinct[k.Name]))
				}
			}
			if res.Signatures != len(distinct["manufacturer"])+len(distinct["tenant"])+map[bool]int{false: 1, true: 0}[withCopy] {
				t.Errorf("result: %d unique signatures", res.Signatures)
			}
		})
	}
}
