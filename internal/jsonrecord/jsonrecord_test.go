package jsonrecord

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestMarshal(t *testing.T) {
	v := struct {
		Name string            `json:"name"`
		Tags map[string]string `json:"tags"`
	}{Name: "a<b>&c", Tags: map[string]string{"z": "1", "a": "2"}}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"name\": \"a<b>&c\",\n  \"tags\": {\n    \"a\": \"2\",\n    \"z\": \"1\"\n  }\n}\n"
	if string(got) != want {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
	if _, err := Marshal(func() {}); err == nil {
		t.Error("Marshal of a func: no error")
	}
}

// stdString is s as Marshal's encoding/json writes it.
func stdString(t testing.TB, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{
		"", "/usr/bin/a b", `quote " back \ slash`, "a<b>&c", "\x00\x01\x1f\x7f",
		"\b\f\n\r\t", "caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff\xfe utf-8 \xe2\x80", "\xed\xa0\x80",
	} {
		want := stdString(t, s)
		if got := string(AppendString([]byte("x"), s)); got != "x"+want {
			t.Errorf("AppendString(%q) = %s, want %s", s, got[1:], want)
		}
	}
}

// FuzzAppendString: AppendString writes what encoding/json writes.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "/a", "\"\\\b\f\n\r\t\x00\x1f\x7f", "\u2028\u2029\xff\xe2\x80", "<>&\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(AppendString(nil, s)), stdString(t, s); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}
