package caddymodule

import (
	"net/http"
	"testing"
)

func TestMarkETag(t *testing.T) {
	for in, want := range map[string]string{
		`"v1"`:   `W/"v1-m"`,
		`W/"v1"`: `W/"v1-m"`,
		`v1`:     "", // not a quoted string: dropped, not left strong
		"":       "",
	} {
		hd := http.Header{}
		if in != "" {
			hd.Set("Etag", in)
		}
		markETag(hd, "-m")
		if got := hd.Get("Etag"); got != want {
			t.Errorf("markETag(%q) = %q, want %q", in, got, want)
		}
	}
}
