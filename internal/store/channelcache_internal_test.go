package store

import (
	"fmt"
	"testing"
	"time"
)

// TestRecentChannelsBound: the remembered channels never exceed
// maxRecentChannels; stale ones go first, and when all are fresh the
// memory starts over rather than grow.
func TestRecentChannelsBound(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		name string
		// staleEvery makes every staleEvery-th entry of the full memory
		// stale when the next channel comes.
		staleEvery int
		wantLen    int
	}{
		{"some stale", 2, maxRecentChannels/2 + 1},
		{"none stale", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recentChannels
			for i := range maxRecentChannels {
				at := t0
				if tt.staleEvery > 0 && i%tt.staleEvery == 0 {
					at = t0.Add(-RecentChannelAge)
				}
				r.put(Channel{ID: fmt.Sprint(i)}, at, r.generation(fmt.Sprint(i)))
			}
			r.put(Channel{ID: "new"}, t0, r.generation("new"))
			if len(r.m) != tt.wantLen {
				t.Errorf("%d channels remembered, want %d", len(r.m), tt.wantLen)
			}
			if _, ok := r.get("new", t0); !ok {
				t.Error("the newest channel is not remembered")
			}
			// Updating a remembered channel never evicts.
			r.put(Channel{ID: "new", Topic: "again"}, t0, r.generation("new"))
			if got, _ := r.get("new", t0); got.Topic != "again" || len(r.m) != tt.wantLen {
				t.Errorf("after an update: %+v, %d remembered", got, len(r.m))
			}
		})
	}
}

// TestIsSelect: only reads are run again after a lost connection
// whatever became of them; a write that returns a row (INSERT …
// RETURNING) may have committed before the connection died.
func TestIsSelect(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{"SELECT id FROM users WHERE name = ?", true},
		{"\n\t  select 1", true},
		{"INSERT INTO users (name) VALUES (?) RETURNING id", false},
		{"UPDATE clients SET connected = ? RETURNING id", false},
		{"SEL", false},
		{"", false},
	} {
		if got := isSelect(tc.query); got != tc.want {
			t.Errorf("isSelect(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
}
