package keyref

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in     string
		scheme Scheme
		want   Ref
		uri    *PKCS11URI
	}{
		{"keys/ima.key", File, Ref{Path: "keys/ima.key"}, nil},
		{"/abs/ima.pem", File, Ref{Path: "/abs/ima.pem"}, nil},
		{"relic:ima", Relic, Ref{Name: "ima"}, nil},
		{"remote:tenant-a", Remote, Ref{Name: "tenant-a"}, nil},
		{"pkcs11:token=fw;object=ima?module-path=/usr/lib/softhsm/libsofthsm2.so", PKCS11, Ref{},
			&PKCS11URI{Token: "fw", Object: "ima", ModulePath: "/usr/lib/softhsm/libsofthsm2.so"}},
		{"pkcs11:serial=0123;id=%01%02;type=private", PKCS11, Ref{}, &PKCS11URI{Serial: "0123", ID: []byte{1, 2}}},
		{"pkcs11:object=my%20key", PKCS11, Ref{}, &PKCS11URI{Object: "my key"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.Scheme != tc.scheme || r.Raw != tc.in || r.String() != tc.in || r.Path != tc.want.Path || r.Name != tc.want.Name {
				t.Errorf("got %+v", r)
			}
			if r.IsToken() != (tc.scheme == Relic || tc.scheme == PKCS11) {
				t.Errorf("IsToken = %v", r.IsToken())
			}
			if r.NeedsRelicConfig() != (tc.scheme == Relic || tc.scheme == Remote) {
				t.Errorf("NeedsRelicConfig = %v", r.NeedsRelicConfig())
			}
			if (r.PKCS11 == nil) != (tc.uri == nil) {
				t.Fatalf("PKCS11 = %+v, want %+v", r.PKCS11, tc.uri)
			}
			if u := r.PKCS11; u != nil {
				w := tc.uri
				if u.Token != w.Token || u.Serial != w.Serial || u.Object != w.Object || !bytes.Equal(u.ID, w.ID) || u.ModulePath != w.ModulePath {
					t.Errorf("PKCS11 = %+v, want %+v", u, w)
				}
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty"},
		{"relic:", "want relic:NAME"},
		{"relic:a b", "want relic:NAME"},
		{"remote:", "want remote:NAME"},
		{"remote:a/b", "want remote:NAME"},
		{"pkcs11:token=fw", "need an object"},
		{"pkcs11:token=fw;object=ima?pin-value=1234", "pin-value is not accepted"},
		{"pkcs11:object=ima;pin-value=1234", "pin-value is not accepted"},
		{"pkcs11:object=ima?pin-source=/etc/pin", "pin-source is not accepted"},
		{"pkcs11:object", "want name=value"},
		{"pkcs11:object=%zz", "path attribute"},
		{"pkcs11:object=a?module-path=%zz", "query attribute"},
		// Attributes imaforge does not match on are refused, not ignored.
		{"pkcs11:token=fw;manufacturer=SoftHSM%20project;object=ima", `attribute "manufacturer" is not supported`},
		{"pkcs11:model=x;object=ima", `attribute "model" is not supported`},
		{"pkcs11:slot-id=3;object=ima", `attribute "slot-id" is not supported`},
		{"pkcs11:library-manufacturer=OpenSC;object=ima", `attribute "library-manufacturer" is not supported`},
		{"pkcs11:x-vendor=1;object=ima", `attribute "x-vendor" is not supported`},
		{"pkcs11:object=ima?module-name=softhsm2", `attribute "module-name" is not supported`},
		{"pkcs11:object=ima;type=cert", "type=cert: a signing key is type=private"},
		{"pkcs11:object=ima;object=other", `attribute "object" given twice`},
		{"pkcs11:object=ima?module-path=/a.so&module-path=/b.so", `attribute "?module-path" given twice`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrInvalid containing %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "1234") {
				t.Errorf("the error repeats a PIN: %v", err)
			}
		})
	}
}

// FuzzParse: Parse never panics; what it accepts keeps the text as written
// and has exactly the parts its scheme needs.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"k.pem", "relic:ima", "pkcs11:token=fw;object=ima?module-path=/m.so",
		"pkcs11:id=%01", "pkcs11:object=a?pin-value=1", "relic:", "remote:k", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.Raw != s {
			t.Fatalf("Raw %q, input %q", r.Raw, s)
		}
		switch r.Scheme {
		case File:
			if r.Path != s || r.PKCS11 != nil {
				t.Fatalf("file ref %+v", r)
			}
		case Relic:
			if r.Name == "" || RelicPrefix+r.Name != s {
				t.Fatalf("relic ref %+v", r)
			}
		case Remote:
			if r.Name == "" || RemotePrefix+r.Name != s {
				t.Fatalf("remote ref %+v", r)
			}
		case PKCS11:
			if r.PKCS11 == nil || (r.PKCS11.Object == "" && len(r.PKCS11.ID) == 0) {
				t.Fatalf("pkcs11 ref %+v", r)
			}
		default:
			t.Fatalf("scheme %v", r.Scheme)
		}
	})
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"pkcs11:object=a;pin-value=1234?module-path=/m.so": "pkcs11:object=a;pin-value=***?module-path=/m.so",
		"pkcs11:object=a?pin-value=1234&pin-source=x":      "pkcs11:object=a?pin-value=***&pin-source=***",
		"relic:pin-value=1":                                "relic:pin-value=1",
		"k.pem":                                            "k.pem",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
