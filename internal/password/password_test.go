package password

import (
	"errors"
	"strings"
	"testing"
)

// cheap keeps the tests fast; the encoding is the same at any cost.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	tests := []struct {
		name, password, attempt string
		want                    bool
	}{
		{"match", "correct horse battery staple", "correct horse battery staple", true},
		{"mismatch", "correct horse battery staple", "correct horse battery stapler", false},
		{"empty password matches itself", "", "", true},
		{"empty attempt", "secret", "", false},
		{"case matters", "Secret", "secret", false},
		{"unicode", "pässwörd ✓", "pässwörd ✓", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := cheap.Hash(tt.password)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Verify(tt.attempt, h)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Verify(%q, Hash(%q)) = %v, want %v", tt.attempt, tt.password, got, tt.want)
			}
		})
	}
}

func TestDefaultHash(t *testing.T) {
	h, err := Hash("secret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want argon2id PHC string with default parameters", h)
	}
	ok, err := Verify("secret", h)
	if err != nil || !ok {
		t.Errorf("Verify = %v, %v; want true, nil", ok, err)
	}
}

func TestSaltIsRandom(t *testing.T) {
	a, _ := cheap.Hash("same")
	b, _ := cheap.Hash("same")
	if a == b {
		t.Errorf("two hashes of the same password are equal: %q", a)
	}
}

func TestDecode(t *testing.T) {
	h, err := cheap.Hash("x")
	if err != nil {
		t.Fatal(err)
	}
	p, salt, key, err := Decode(h)
	if err != nil {
		t.Fatal(err)
	}
	if p != cheap || len(salt) != 16 || len(key) != 32 {
		t.Errorf("Decode = %+v, %d-byte salt, %d-byte key", p, len(salt), len(key))
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt = "c2FsdHNhbHRzYWx0c2FsdA"                     // 16 bytes
	const key = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U" // 32 bytes
	good := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, err := Verify("x", good); err != nil {
		t.Fatalf("well-formed hash rejected: %v", err)
	}
	tests := []string{
		"",
		"secret",
		"$2a$10$abcdefghijklmnopqrstuu",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key, // 4 GiB
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + "!!" + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "=",
		"$argon2id$v=19$m=64,t=1,p=1$" + "c2FsdA" + "$" + key, // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + "a2V5",  // 3-byte key
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		good[1:],
	}
	for _, h := range tests {
		ok, err := Verify("x", h)
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformed", h, ok, err)
		}
	}
}

func TestHashRejectsBadParams(t *testing.T) {
	bad := cheap
	bad.KeyLen = 4
	if _, err := bad.Hash("x"); err == nil {
		t.Error("Hash with a 4-byte key succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	h, _ := cheap.Hash("seed")
	f.Add(h)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$")
	f.Add("$argon2id$v=19$m=,t=,p=$a$b")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := Decode(s)
		if err != nil {
			return
		}
		if p.Memory > maxMemory || p.Time > maxTime || len(salt) != p.SaltLen || len(key) != p.KeyLen {
			t.Fatalf("Decode(%q) accepted out-of-range %+v", s, p)
		}
	})
}

func BenchmarkHashDefault(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}
