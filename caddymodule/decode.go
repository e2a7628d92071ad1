package caddymodule

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// bodyDecoder returns the decoder of a body's Content-Encoding (nil when
// it has none) and the coding; ok is false for a coding the gateway
// cannot decode, whose body must then pass as it is.
func bodyDecoder(h http.Header) (decode func(io.Reader) (io.Reader, error), coding string, ok bool) {
	switch coding = strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); coding {
	case "", "identity":
		return nil, coding, true
	}
	decode = decoderFor(coding)
	return decode, coding, decode != nil
}

// decoderFor returns the decoder of a content coding, or nil for one the
// gateway cannot decode (br: no decoder in Caddy's build; the gateway never
// asks for it).
func decoderFor(coding string) func(io.Reader) (io.Reader, error) {
	switch coding {
	case "gzip", "x-gzip":
		return func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
	case "deflate":
		return inflate
	case "zstd":
		return func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}
	}
	return nil
}

// inflate reads HTTP's "deflate", which is zlib-wrapped, and the raw
// deflate some servers send under that name instead.
func inflate(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err == nil && len(head) == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// decodingTransform decodes a compressed body into a rewriter. Decoders
// read, so the decoding runs in a goroutine fed through a pipe; Close waits
// for it, so none outlives the response. It writes to a heldOutput, whose
// mutex keeps its writes and the handler's flushes apart.
type decodingTransform struct {
	pw   *io.PipeWriter
	done chan error
	next bodyTransform
}

func newDecodingTransform(decode func(io.Reader) (io.Reader, error), build func(io.Writer) bodyTransform, dst *heldOutput) *decodingTransform {
	pr, pw := io.Pipe()
	t := &decodingTransform{pw: pw, done: make(chan error, 1), next: build(dst)}
	go func() {
		r, err := decode(pr)
		if err == nil {
			_, err = io.Copy(t.next, r)
			if c, ok := r.(io.Closer); ok {
				c.Close()
			}
		}
		pr.CloseWithError(err) // unblocks Write if decoding stopped early
		t.done <- err
	}()
	return t
}

func (t *decodingTransform) Write(p []byte) (int, error) { return t.pw.Write(p) }

// Flush leaves what the rewriter holds to the goroutine until Close; the
// heldOutput flushes what the goroutine writes.
func (t *decodingTransform) Flush() error { return nil }

func (t *decodingTransform) Close() error {
	t.pw.Close()
	err := <-t.done
	if cerr := t.next.Close(); err == nil {
		err = cerr
	}
	return err
}

// decodableEncodings filters an Accept-Encoding value to what the gateway
// can decode.
func decodableEncodings(accept string) string {
	var keep []string
	for _, part := range strings.Split(accept, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if decoderFor(strings.ToLower(strings.TrimSpace(name))) != nil {
			keep = append(keep, strings.TrimSpace(part))
		}
	}
	if len(keep) == 0 {
		return "identity"
	}
	return strings.Join(keep, ", ")
}
