package cli

import (
	"encoding/base64"
	"testing"

	"channels/internal/cluster"
	"channels/internal/verto"
)

func TestPresenceOf(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tt := range []struct {
		params string
		want   cluster.Presence
	}{
		{`{"eventChannel":"c","eventData":"` + b64(`{"t":"available","name":"A","hello":true}`) + `","userid":"u@d"}`, cluster.Announce},
		{string(presenceLeave("c")), cluster.Goodbye},
		{`{"eventData":"` + b64(`{"t":"chat"}`) + `"}`, cluster.NotPresence},
		{`{"eventData":"not base64!"}`, cluster.NotPresence},
		{`{"eventData":"` + b64(`not json`) + `"}`, cluster.NotPresence},
		{`{"eventData":42}`, cluster.NotPresence},
		{`[]`, cluster.NotPresence},
		{``, cluster.NotPresence},
	} {
		if got := presenceOf([]byte(tt.params)); got != tt.want {
			t.Errorf("presenceOf(%s) = %v, want %v", tt.params, got, tt.want)
		}
	}
}

// FuzzPresenceOf: a member's broadcast, whatever it holds, never makes
// the classifier panic.
func FuzzPresenceOf(f *testing.F) {
	f.Add([]byte(presenceLeave("c")))
	f.Add(verto.Object("eventData", base64.StdEncoding.EncodeToString([]byte(`{"t":"available"}`))))
	f.Add([]byte(`{"eventData":"eyJ0Ijo"}`))
	f.Fuzz(func(t *testing.T, params []byte) {
		_ = presenceOf(params)
	})
}
