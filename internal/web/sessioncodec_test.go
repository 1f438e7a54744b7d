package web

import (
	"reflect"
	"testing"
	"time"
)

func TestSessionCodecRoundTrip(t *testing.T) {
	deadline := time.Date(2026, 12, 9, 10, 0, 0, 0, time.UTC)
	for _, values := range []map[string]any{
		{},
		{userKey: int64(42)},
		{clientKeyPrefix + "a": "client-a", clientKeyPrefix + "b": "client-b", userKey: int64(-1)},
	} {
		b, err := sessionCodec{}.Encode(deadline, values)
		if err != nil {
			t.Fatal(err)
		}
		gotDeadline, got, err := sessionCodec{}.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !gotDeadline.Equal(deadline) || !reflect.DeepEqual(got, values) {
			t.Errorf("round trip of %v = %v, %v", values, gotDeadline, got)
		}
	}
	if _, err := (sessionCodec{}).Encode(deadline, map[string]any{"x": 1.5}); err == nil {
		t.Error("a float value was encoded")
	}
}

func FuzzSessionCodecDecode(f *testing.F) {
	f.Add([]byte(`{"d":"2026-12-09T10:00:00Z","s":{"client:x":"y"},"i":{"user_id":7}}`))
	f.Add([]byte(`{"i":{"user_id":1e99}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		deadline, values, err := sessionCodec{}.Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode again and decode to the same.
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
