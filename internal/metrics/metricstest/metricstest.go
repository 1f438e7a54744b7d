// Package metricstest reads a Prometheus text exposition for tests, so
// they can check how far a counter moved.
package metricstest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Sample is one series of a scrape.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples are the series of one scrape.
type Samples []Sample

// Scrape GETs url and parses the answer; it fails t on any error.
func Scrape(t testing.TB, url string) Samples {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	s, err := Parse(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return s
}

// Parse reads the text format: comments are skipped, every other line is
// name{label="value",…} value.
func Parse(r io.Reader) (Samples, error) {
	var out Samples
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseLine(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value in %q", line)
	}
	s.Name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			key, rest, ok := strings.Cut(line, `="`)
			if !ok {
				return s, fmt.Errorf("bad labels in %q", line)
			}
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					if rest[j] == 'n' {
						val.WriteByte('\n')
						continue
					}
				}
				val.WriteByte(rest[j])
			}
			if j == len(rest) {
				return s, fmt.Errorf("unterminated label value in %q", line)
			}
			s.Labels[strings.TrimPrefix(key, ",")] = val.String()
			line = rest[j+1:]
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value after %s", s.Name)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value of %s: %w", s.Name, err)
	}
	s.Value = v
	return s, nil
}

// Sum adds the values of the series named name whose labels include the
// given ones, as pairs: Sum("x_total", "route", "/", "code", "200").
func (ss Samples) Sum(name string, labels ...string) float64 {
	var sum float64
	for _, s := range ss {
		if s.Name == name && s.has(labels) {
			sum += s.Value
		}
	}
	return sum
}

// Has reports whether a series named name with the given labels exists.
func (ss Samples) Has(name string, labels ...string) bool {
	for _, s := range ss {
		if s.Name == name && s.has(labels) {
			return true
		}
	}
	return false
}

func (s Sample) has(labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if v, ok := s.Labels[labels[i]]; !ok || v != labels[i+1] {
			return false
		}
	}
	return true
}

// Delta is after's Sum minus before's.
func Delta(before, after Samples, name string, labels ...string) float64 {
	return after.Sum(name, labels...) - before.Sum(name, labels...)
}
