package compress

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
)

// Best levels, for what is compressed once and served many times.
const (
	GzipBest   = gzip.BestCompression
	BrotliBest = brotli.BestCompression
)

// Encoder compresses whole bodies with one coding at one level, reusing
// its compressors: a gzip compressor holds about 800 KB of tables and a
// brotli one more, so making one per response would cost more than the
// compressing. Safe for concurrent use.
type Encoder struct {
	coding string
	level  int
	pool   sync.Pool
}

// encoder is what gzip.Writer and brotli.Writer have in common.
type encoder interface {
	io.WriteCloser
	Reset(io.Writer)
}

// NewEncoder returns an Encoder for coding (Gzip or Brotli) at level
// (gzip: 1–9; brotli: 0–11).
func NewEncoder(coding string, level int) (*Encoder, error) {
	e := &Encoder{coding: coding, level: level}
	switch coding {
	case Gzip:
		if level < gzip.BestSpeed || level > gzip.BestCompression {
			return nil, fmt.Errorf("compress: gzip level %d out of 1–9", level)
		}
		e.pool.New = func() any {
			w, _ := gzip.NewWriterLevel(io.Discard, level) // level checked above
			return w
		}
	case Brotli:
		if level < brotli.BestSpeed || level > brotli.BestCompression {
			return nil, fmt.Errorf("compress: brotli level %d out of 0–11", level)
		}
		e.pool.New = func() any {
			// A 64 KiB window (lgwin 16) keeps each compressor's
			// memory small; it covers every file this site sends
			// (larger bodies would compress a little less well).
			return brotli.NewWriterOptions(io.Discard, brotli.WriterOptions{Quality: level, LGWin: 16})
		}
	default:
		return nil, fmt.Errorf("compress: unknown coding %q", coding)
	}
	return e, nil
}

// Coding is the Content-Encoding the Encoder produces.
func (e *Encoder) Coding() string { return e.coding }

// Encode appends the compressed form of src to dst.
func (e *Encoder) Encode(dst *bytes.Buffer, src []byte) error {
	w := e.pool.Get().(encoder)
	w.Reset(dst)
	_, err := w.Write(src)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	// Detach the buffer, so the pool holds no reference to it.
	w.Reset(io.Discard)
	e.pool.Put(w)
	if err != nil {
		return fmt.Errorf("compress: %s: %w", e.coding, err)
	}
	return nil
}

// Bytes returns src compressed with coding at level, for one-off use
// (no pooling).
func Bytes(coding string, level int, src []byte) ([]byte, error) {
	e, err := NewEncoder(coding, level)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := e.Encode(&buf, src); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
