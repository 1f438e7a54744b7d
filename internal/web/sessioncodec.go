package web

import (
	"encoding/json"
	"fmt"
	"time"
)

// sessionCodec stores session data as JSON with its values sorted by type.
// The session holds only strings (client ids) and int64s (the user id), and
// scs's default gob codec builds a fresh decoder for every request, which
// cost more than the database read it follows.
type sessionCodec struct{}

type sessionRecord struct {
	Deadline time.Time         `json:"d"`
	Strings  map[string]string `json:"s,omitempty"`
	Ints     map[string]int64  `json:"i,omitempty"`
}

func (sessionCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	rec := sessionRecord{Deadline: deadline}
	for k, v := range values {
		switch v := v.(type) {
		case string:
			if rec.Strings == nil {
				rec.Strings = map[string]string{}
			}
			rec.Strings[k] = v
		case int64:
			if rec.Ints == nil {
				rec.Ints = map[string]int64{}
			}
			rec.Ints[k] = v
		default:
			return nil, fmt.Errorf("session value %q: unsupported type %T", k, v)
		}
	}
	return json.Marshal(rec)
}

func (sessionCodec) Decode(b []byte) (time.Time, map[string]any, error) {
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
