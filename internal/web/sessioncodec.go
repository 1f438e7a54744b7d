package web

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// sessionCodec stores session data in a small binary form. The session
// holds only strings (client ids and passwords) and int64s (the user id,
// times), and every channel page view decodes it: scs's default gob codec
// builds a fresh decoder for every request, which cost more than the
// database read it follows, and the JSON that replaced it still took a
// twentieth of the page's CPU time.
//
// The form, after the version byte sessionV1: the deadline as Unix
// seconds (varint) and nanoseconds (uvarint), the number of values
// (uvarint), then each value as a kind byte ('s' or 'i'), its key (uvarint
// length, bytes) and its value (uvarint length and bytes for a string, a
// varint for an int64). Sessions written as JSON (an object: '{') by
// earlier versions still decode.
type sessionCodec struct{}

const sessionV1 = 1

// sessionRecord is the JSON form of earlier versions.
type sessionRecord struct {
	Deadline time.Time         `json:"d"`
	Strings  map[string]string `json:"s,omitempty"`
	Ints     map[string]int64  `json:"i,omitempty"`
}

func (sessionCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	n := 1 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen32
	for k, v := range values {
		n += 1 + binary.MaxVarintLen32 + len(k) + binary.MaxVarintLen64
		if s, ok := v.(string); ok {
			n += len(s)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, sessionV1)
	b = binary.AppendVarint(b, deadline.Unix())
	b = binary.AppendUvarint(b, uint64(deadline.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(len(values)))
	for k, v := range values {
		switch v := v.(type) {
		case string:
			b = append(b, 's')
			b = appendString(b, k)
			b = appendString(b, v)
		case int64:
			b = append(b, 'i')
			b = appendString(b, k)
			b = binary.AppendVarint(b, v)
		default:
			return nil, fmt.Errorf("session value %q: unsupported type %T", k, v)
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func (sessionCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeJSONSession(b)
	}
	if len(b) == 0 || b[0] != sessionV1 {
		return time.Time{}, nil, errors.New("decode session: unknown format")
	}
	d := sessionDecoder{b: b[1:]}
	sec := d.varint()
	nsec := d.uvarint()
	count := d.uvarint()
	if d.err != nil || nsec >= uint64(time.Second) || count > uint64(len(d.b)/3) {
		// Each value takes at least three bytes: kind and two lengths.
		return time.Time{}, nil, errors.New("decode session: corrupt header")
	}
	deadline := time.Unix(sec, int64(nsec)) // the zero time too: its Unix seconds
	values := make(map[string]any, count)
	for range count {
		kind := d.byte()
		k := d.string()
		switch kind {
		case 's':
			values[k] = d.string()
		case 'i':
			values[k] = d.varint()
		default:
			d.fail()
		}
		if d.err != nil {
			return time.Time{}, nil, fmt.Errorf("decode session: %w", d.err)
		}
	}
	if len(d.b) != 0 {
		return time.Time{}, nil, errors.New("decode session: trailing bytes")
	}
	return deadline, values, nil
}

// sessionDecoder reads the binary form; after the first error every read
// returns a zero value and err stays set.
type sessionDecoder struct {
	b   []byte
	err error
}

func (d *sessionDecoder) fail() {
	if d.err == nil {
		d.err = errors.New("corrupt value")
	}
	d.b = nil
}

func (d *sessionDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *sessionDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *sessionDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *sessionDecoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func decodeJSONSession(b []byte) (time.Time, map[string]any, error) {
	var rec sessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return time.Time{}, nil, fmt.Errorf("decode session: %w", err)
	}
	values := make(map[string]any, len(rec.Strings)+len(rec.Ints))
	for k, v := range rec.Strings {
		values[k] = v
	}
	for k, v := range rec.Ints {
		values[k] = v
	}
	return rec.Deadline, values, nil
}
