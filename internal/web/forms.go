package web

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTopic is the longest channel topic, in characters.
const MaxTopic = 100

// readForm parses a POSTed URL-encoded form. Bodies that are too large,
// not URL-encoded, or undecodable are the sender's fault: 4xx.
func readForm(r *http.Request) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, errorf(http.StatusUnsupportedMediaType, "Forms must be sent URL-encoded (application/x-www-form-urlencoded).")
		}
	}
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "The form is too large (at most %d bytes).", maxFormBytes)
		}
		return nil, errorf(http.StatusBadRequest, "The form data could not be read.")
	}
	return r.PostForm, nil
}

// field returns a form field that may appear at most once and must be
// valid UTF-8 text.
func field(form url.Values, name string) (string, error) {
	vs := form[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", errorf(http.StatusBadRequest, "The form field %q was sent more than once.", name)
	case !utf8.ValidString(vs[0]):
		return "", errorf(http.StatusBadRequest, "The form field %q is not valid text.", name)
	}
	return vs[0], nil
}

// checkbox reads an HTML checkbox: absent is false, "on" (what browsers
// send) is true.
func checkbox(form url.Values, name string) (bool, error) {
	v, err := field(form, name)
	if err != nil {
		return false, err
	}
	switch v {
	case "":
		return false, nil
	case "on":
		return true, nil
	}
	return false, errorf(http.StatusBadRequest, "The form field %q must be \"on\" or absent.", name)
}

// TopicError explains why a topic is not acceptable, in words for the
// person who typed it.
type TopicError struct{ Reason string }

func (e *TopicError) Error() string { return e.Reason }

// CheckTopic trims a channel topic and checks it: not empty, at most
// MaxTopic characters, valid UTF-8 without control characters. The error's
// message is meant for the person who typed the topic.
func CheckTopic(topic string) (string, error) {
	if !utf8.ValidString(topic) {
		return topic, &TopicError{"The topic is not valid text."}
	}
	topic = strings.TrimSpace(topic)
	switch {
	case topic == "":
		return topic, &TopicError{"The topic must not be empty."}
	case utf8.RuneCountInString(topic) > MaxTopic:
		return topic, &TopicError{"The topic must be at most 100 characters."}
	case strings.ContainsFunc(topic, unicode.IsControl):
		return topic, &TopicError{"The topic must not contain control characters."}
	}
	return topic, nil
}
