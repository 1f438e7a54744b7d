// Package password hashes and verifies account passwords with argon2id.
//
// Hashes are stored as PHC-style strings, so the parameters travel with the
// hash and can be raised later without breaking existing accounts:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64>$<key, base64>
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen int // bytes
	KeyLen  int // bytes
}

// DefaultParams follows the OWASP recommendation for argon2id (19 MiB, two
// passes, one lane), which costs a few tens of milliseconds per hash.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Limits on parameters accepted from an encoded hash, so a corrupt or hostile
// database row cannot make Verify allocate gigabytes or spin for minutes.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 16
	maxThreads = 64
	minKeyLen  = 16
	maxKeyLen  = 128
	minSaltLen = 8
	maxSaltLen = 64
)

// ErrMalformed reports an encoded hash that is not one this package made.
var ErrMalformed = errors.New("password: malformed hash")

var b64 = base64.RawStdEncoding

// Hash derives an argon2id key from password with DefaultParams and a fresh
// random salt, and returns its encoded form.
func Hash(password string) (string, error) { return DefaultParams().Hash(password) }

// Hash derives an argon2id key from password with p and a fresh random salt,
// and returns its encoded form.
func (p Params) Hash(password string) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: reading salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(p.KeyLen))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the encoded hash. The comparison
// takes constant time in the key. A malformed hash is an error
// (ErrMalformed), not a mismatch.
func Verify(password, encoded string) (bool, error) {
	p, salt, key, err := Decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// Decode parses an encoded hash into its parameters, salt and key.
func Decode(encoded string) (Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformed
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, fmt.Errorf("%w: unsupported version %q", ErrMalformed, parts[2])
	}
	var p Params
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return Params{}, nil, nil, fmt.Errorf("%w: parameters %q", ErrMalformed, parts[3])
	}
	for i, want := range []string{"m", "t", "p"} {
		name, val, ok := strings.Cut(fields[i], "=")
		if !ok || name != want {
			return Params{}, nil, nil, fmt.Errorf("%w: parameters %q", ErrMalformed, parts[3])
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return Params{}, nil, nil, fmt.Errorf("%w: parameter %s=%q", ErrMalformed, name, val)
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return Params{}, nil, nil, fmt.Errorf("%w: parameter p=%q", ErrMalformed, val)
			}
			p.Threads = uint8(n)
		}
	}
	salt, err := b64.Strict().DecodeString(parts[4])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: salt: %v", ErrMalformed, err)
	}
	key, err := b64.Strict().DecodeString(parts[5])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: key: %v", ErrMalformed, err)
	}
	p.SaltLen, p.KeyLen = len(salt), len(key)
	if err := p.check(); err != nil {
		return Params{}, nil, nil, err
	}
	return p, salt, key, nil
}

func (p Params) check() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("%w: memory %d KiB out of range", ErrMalformed, p.Memory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("%w: time %d out of range", ErrMalformed, p.Time)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("%w: threads %d out of range", ErrMalformed, p.Threads)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("%w: salt of %d bytes", ErrMalformed, p.SaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("%w: key of %d bytes", ErrMalformed, p.KeyLen)
	}
	return nil
}
