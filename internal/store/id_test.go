package store

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{"3E1A6D2C-8F0B-4B6A-9C1D-2E3F4A5B6C7D", false}, // upper case: not the canonical spelling
		{"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6C7d", false},
		{"3e1a6d2c8f0b4b6a9c1d2e3f4a5b6c7d", false},
		{"{3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d}", false},
		{"urn:uuid:3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d", false},
		{"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7g", false},
		{"3e1a6d2c-8f0b-4b6a-9c1d+2e3f4a5b6c7d", false},
		{"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7", false},
		{"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d0", false},
		{" 3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7", false},
		{"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7\x00", false},
		{"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7\xe9", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.s); got != tt.ok {
			t.Errorf("ValidID(%q) = %v, want %v", tt.s, got, tt.ok)
		}
	}
	// What the store makes passes.
	for range 100 {
		if id := uuid.NewString(); !ValidID(id) {
			t.Fatalf("ValidID(%q) = false for a new id", id)
		}
	}
}

// FuzzValidID checks ValidID against an independent reading of the same
// rule: uuid.Parse accepts the string and spells it back unchanged.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{
		"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d",
		"3E1A6D2C-8F0B-4B6A-9C1D-2E3F4A5B6C7D",
		"{3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d}",
		"urn:uuid:3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d",
		"3e1a6d2c8f0b4b6a9c1d2e3f4a5b6c7d",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := uuid.Parse(s)
		want := err == nil && u.String() == s
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, uuid.Parse says %v", s, got, want)
		}
		if ValidID(s) && (len(s) != 36 || strings.ToLower(s) != s) {
			t.Errorf("ValidID(%q) = true for a non-canonical spelling", s)
		}
	})
}
