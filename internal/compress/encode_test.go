package compress

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
)

// Decode reverses Encode, for tests.
func decode(t testing.TB, coding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case Brotli:
		r = brotli.NewReader(bytes.NewReader(b))
	default:
		t.Fatalf("coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", coding, err)
	}
	return out
}

func TestEncoderRoundTrip(t *testing.T) {
	src := []byte(strings.Repeat("<li><a href=\"/c/0d6e0f1e\">A public channel</a></li>\n", 200))
	for _, tt := range []struct {
		coding string
		level  int
	}{{Gzip, 1}, {Gzip, GzipBest}, {Brotli, 0}, {Brotli, 5}, {Brotli, BrotliBest}} {
		e, err := NewEncoder(tt.coding, tt.level)
		if err != nil {
			t.Fatal(err)
		}
		if e.Coding() != tt.coding {
			t.Errorf("Coding = %q", e.Coding())
		}
		// Concurrent use shares pooled compressors; each result must
		// still be the whole body, alone.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				var buf bytes.Buffer
				if err := e.Encode(&buf, src); err != nil {
					t.Error(err)
					return
				}
				if buf.Len() >= len(src)/4 {
					t.Errorf("%s/%d: %d bytes of %d", tt.coding, tt.level, buf.Len(), len(src))
				}
				if got := decode(t, tt.coding, buf.Bytes()); !bytes.Equal(got, src) {
					t.Errorf("%s/%d: round trip differs", tt.coding, tt.level)
				}
			})
		}
		wg.Wait()
	}
	b, err := Bytes(Gzip, GzipBest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, Gzip, b); len(got) != 0 {
		t.Errorf("empty body decodes to %q", got)
	}
}

func TestNewEncoderErrors(t *testing.T) {
	for _, tt := range []struct {
		coding string
		level  int
	}{{Gzip, 0}, {Gzip, 10}, {Brotli, -1}, {Brotli, 12}, {"zstd", 3}, {Identity, 1}} {
		if _, err := NewEncoder(tt.coding, tt.level); err == nil {
			t.Errorf("NewEncoder(%q, %d): no error", tt.coding, tt.level)
		}
	}
}
