package jsonrecord

import "testing"

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
