package store

// ValidID reports whether s has the form of the ids the store makes for
// channels and clients: a UUID in its canonical lower-case form, 8-4-4-4-12
// hexadecimal digits. It is the one check of ids that come from outside —
// URLs, Verto logins, sessions, the command line — before they reach a
// query, a cache or a redirect. Only the canonical form passes, so one id
// has one spelling everywhere (the web app redirects other spellings of a
// channel URL to it).
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}
