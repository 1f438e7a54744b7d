package web

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSessionCodecV1 round-trips the binary form's edge cases.
func TestSessionCodecV1(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Time
		values   map[string]any
	}{
		{"zero deadline, nothing", time.Time{}, map[string]any{}},
		{"the Unix epoch", time.Unix(0, 0), map[string]any{"a": ""}},
		{"before the epoch, nanoseconds", time.Date(1901, 2, 3, 4, 5, 6, 999999999, time.UTC), map[string]any{"": int64(0)}},
		{"far future", time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC), map[string]any{"n": int64(math.MinInt64), "m": int64(math.MaxInt64)}},
		{"a channel page's session", time.Now(), map[string]any{
			provisionalKey:                           int64(1),
			clientKeyPrefix + "c":                    "32edf84b-f0e4-432a-b6ba-c8d2b96dbc11",
			clientPasswordKeyPrefix + "c":            "76777199-af03-4da0-966a-54a141240399",
			clientLoginKeyPrefix + "c":               int64(1795543965),
			userKey:                                  int64(-7),
			"unicode ✓ and \x00 bytes":               "välue\x00\xff",
			strings.Repeat("long key ", 100):         strings.Repeat("long value ", 1000),
			clientKeyPrefix + "empty password's key": "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := sessionCodec{}.Encode(tt.deadline, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != sessionV1 {
				t.Fatalf("encoded with version byte %d", b[0])
			}
			d, v, err := sessionCodec{}.Decode(b)
			if err != nil || !d.Equal(tt.deadline) || !reflect.DeepEqual(v, tt.values) {
				t.Errorf("decoded %v, %v, %v; want %v, %v", d, v, err, tt.deadline, tt.values)
			}
		})
	}
}

// TestSessionCodecReadsJSON: sessions stored as JSON by earlier versions
// keep their data, and are rewritten in the binary form.
func TestSessionCodecReadsJSON(t *testing.T) {
	old := []byte(`{"d":"2026-12-09T10:00:00Z","s":{"client:x":"y","clientpw:x":"z"},"i":{"user_id":7,"provisional":1}}`)
	d, v, err := sessionCodec{}.Decode(old)
	want := map[string]any{"client:x": "y", "clientpw:x": "z", userKey: int64(7), provisionalKey: int64(1)}
	if err != nil || !d.Equal(time.Date(2026, 12, 9, 10, 0, 0, 0, time.UTC)) || !reflect.DeepEqual(v, want) {
		t.Fatalf("decoded %v, %v, %v; want %v", d, v, err, want)
	}
	b, err := sessionCodec{}.Encode(d, v)
	if err != nil || b[0] != sessionV1 || len(b) >= len(old) {
		t.Errorf("re-encoded as %q (%d bytes, JSON %d), %v", b, len(b), len(old), err)
	}
}

// TestSessionCodecRejects: damaged data is an error, never a panic or a
// huge allocation; page then starts the browser a new session.
func TestSessionCodecRejects(t *testing.T) {
	good, err := sessionCodec{}.Encode(time.Unix(1795543965, 5), map[string]any{"client:c": "id", "user_id": int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"JSON null", []byte("null")},
		{"broken JSON", []byte(`{"d":`)},
		{"nanoseconds out of range", []byte{sessionV1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0}},
		{"a count larger than the data", []byte{sessionV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 's', 0, 0}},
		{"unknown kind", []byte{sessionV1, 0, 0, 1, 'f', 1, 'k', 1}},
		{"string longer than the data", []byte{sessionV1, 0, 0, 1, 's', 1, 'k', 0x7f, 'v'}},
		{"trailing bytes", append(bytes.Clone(good), 0)},
	}
	for n := 1; n < len(good); n++ {
		tests = append(tests, struct {
			name string
			b    []byte
		}{"cut after " + string(rune('0'+n%10)), good[:n]})
	}
	for _, tt := range tests {
		if _, _, err := (sessionCodec{}).Decode(tt.b); err == nil {
			t.Errorf("%s: %q decoded", tt.name, tt.b)
		}
	}
}

func FuzzSessionCodecV1(f *testing.F) {
	for _, v := range []map[string]any{{}, {"client:c": "id", "user_id": int64(7)}, {"": ""}} {
		b, err := sessionCodec{}.Encode(time.Unix(1795543965, 5), v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		deadline, values, err := sessionCodec{}.Decode(b)
		if err != nil {
			return
		}
		again, err := sessionCodec{}.Encode(deadline, values)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		d2, v2, err := sessionCodec{}.Decode(again)
		if err != nil || !d2.Equal(deadline) || !reflect.DeepEqual(v2, values) {
			t.Fatalf("second round trip differs: %v %v %v", d2, v2, err)
		}
	})
}

func BenchmarkSessionCodecDecode(b *testing.B) {
	data, err := sessionCodec{}.Encode(time.Now(), map[string]any{
		clientKeyPrefix + "7641799e-64df-4cb4-80d8-cbeb31e0a0e4":         "32edf84b-f0e4-432a-b6ba-c8d2b96dbc11",
		clientPasswordKeyPrefix + "7641799e-64df-4cb4-80d8-cbeb31e0a0e4": "76777199-af03-4da0-966a-54a141240399",
		clientLoginKeyPrefix + "7641799e-64df-4cb4-80d8-cbeb31e0a0e4":    int64(1795543965),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := (sessionCodec{}).Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
