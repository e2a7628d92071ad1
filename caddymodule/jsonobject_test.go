package caddymodule

import (
	"encoding/json"
	"testing"
)

// TestParseObject: members keep the helpdesk's order and bytes' meaning
// (numbers as written, escapes), a key given twice has its last value,
// and an agent's tokens are dropped at any depth, in arrays too.
func TestParseObject(t *testing.T) {
	in := `{"b": 1.50, "a": {"access_token": "T1", "x": [{"pubsub_token": "T2", "y": "\u003cz\u003e"}]}, "b": 2e3, "access_token": "T3", "n": null}`
	o, err := parseObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(o)
	if want := `{"b":2e3,"a":{"x":[{"y":"\u003cz\u003e"}]},"n":null}`; string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for _, bad := range []string{`[1]`, `"x"`, `{"a":1} {}`, `{"a":`, ``} {
		if _, err := parseObject([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	first := o.withFirst([]string{"id", "n"}, map[string]json.RawMessage{"id": json.RawMessage("7")}, "b")
	got, _ = json.Marshal(first)
	if want := `{"id":7,"n":null,"a":{"x":[{"y":"\u003cz\u003e"}]}}`; string(got) != want {
		t.Errorf("withFirst: got %s, want %s", got, want)
	}
}
