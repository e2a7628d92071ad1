package caddymodule

import (
	"encoding/json"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Duration is a caddy.Duration that is written back as a duration string
// ("15s"), so that adapted and exported configs read as they were written.
// It accepts what caddy.Duration accepts: a string such as "1m30s" or "2d",
// or an integer number of nanoseconds.
type Duration caddy.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads what caddy.Duration reads.
func (d *Duration) UnmarshalJSON(b []byte) error {
	return (*caddy.Duration)(d).UnmarshalJSON(b)
}

// Interface guards.
var (
	_ json.Marshaler   = Duration(0)
	_ json.Unmarshaler = (*Duration)(nil)
)
