package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// jsonObject is a JSON object as the helpdesk wrote it: its members in
// their order, each value as raw JSON.
type jsonObject []jsonMember

type jsonMember struct {
	key string
	val json.RawMessage
}

// secretKeys are members that never leave the gateway, at any depth of
// what the helpdesk answers: an agent's API and pub/sub tokens (Chatwoot's
// agent records in a conversation carry neither, but a helpdesk that put
// a whole user record there would hand them to every app).
var secretKeys = map[string]bool{"access_token": true, "pubsub_token": true}

var errNotObject = errors.New("not a JSON object")

// parseObject reads raw, a JSON object, keeping its members' order and
// dropping secretKeys at every depth. A key given twice keeps its last
// value, in the place of its first, as JSON decoders read it.
func parseObject(raw []byte) (jsonObject, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errNotObject
	}
	var o jsonObject
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := t.(string)
		var val bytes.Buffer
		if err := copyScrubbed(dec, &val); err != nil {
			return nil, err
		}
		if secretKeys[key] {
			continue
		}
		if i := o.index(key); i >= 0 {
			o[i].val = val.Bytes()
			continue
		}
		o = append(o, jsonMember{key, val.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("data after the JSON object")
	}
	return o, nil
}

// copyScrubbed copies the next JSON value of dec to b, without the
// members named in secretKeys.
func copyScrubbed(dec *json.Decoder, b *bytes.Buffer) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		b.WriteByte('{')
		n := 0
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key := kt.(string)
			if secretKeys[key] {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return err
				}
				continue
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			k, _ := json.Marshal(key)
			b.Write(k)
			b.WriteByte(':')
			if err := copyScrubbed(dec, b); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		b.WriteByte('}')
		return err
	case json.Delim('['):
		b.WriteByte('[')
		for n := 0; dec.More(); n++ {
			if n > 0 {
				b.WriteByte(',')
			}
			if err := copyScrubbed(dec, b); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		b.WriteByte(']')
		return err
	}
	v, err := json.Marshal(t) // a string, json.Number, bool or nil
	if err != nil {
		return fmt.Errorf("re-encoding %v: %v", t, err)
	}
	b.Write(v)
	return nil
}

func (o jsonObject) index(key string) int {
	for i, m := range o {
		if m.key == key {
			return i
		}
	}
	return -1
}

// get returns the value of key, or nil.
func (o jsonObject) get(key string) json.RawMessage {
	if i := o.index(key); i >= 0 {
		return o[i].val
	}
	return nil
}

// object returns the member key parsed as an object, or nil when it is
// missing or not an object.
func (o jsonObject) object(key string) jsonObject {
	v := o.get(key)
	if len(v) == 0 || v[0] != '{' {
		return nil
	}
	obj, err := parseObject(v)
	if err != nil {
		return nil
	}
	return obj
}

var jsonNull = json.RawMessage("null")

// MarshalJSON writes the members in order.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		if len(m.val) == 0 {
			b.Write(jsonNull)
		} else {
			b.Write(m.val)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// withFirst returns o with the members named in first at its head, in
// that order (null where o has none, or where override gives nil), then
// the rest of o in its order but for those named in drop.
func (o jsonObject) withFirst(first []string, override map[string]json.RawMessage, drop ...string) jsonObject {
	out := make(jsonObject, 0, len(o)+len(first))
	skip := make(map[string]bool, len(first)+len(drop))
	for _, k := range first {
		v, ok := override[k]
		if !ok {
			v = o.get(k)
		}
		if len(v) == 0 {
			v = jsonNull
		}
		out = append(out, jsonMember{k, v})
		skip[k] = true
	}
	for _, k := range drop {
		skip[k] = true
	}
	for _, m := range o {
		if !skip[m.key] {
			out = append(out, m)
		}
	}
	return out
}
