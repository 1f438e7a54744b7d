package fsapi

import (
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// Declaration is the XML declaration every response starts with, as
// FreeSWITCH's own recorded answers have it.
const Declaration = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>` + "\n"

// notFoundBody is FreeSWITCH's "not found" document, after the declaration.
const notFoundBody = `<document type="freeswitch/xml">
  <section name="result">
    <result status="not found"/>
  </section>
</document>
`

// NotFound returns the whole not-found document (declaration included), a
// fresh copy the caller may keep.
func NotFound() []byte {
	return []byte(Declaration + notFoundBody)
}

// Escape returns s safe to place in XML character data or in a quoted
// attribute value: the five markup characters become entity or character
// references, tab, newline and carriage return become character references
// (so attribute-value normalisation keeps them), and anything XML 1.0
// cannot carry at all — other control characters, U+FFFE, U+FFFF and bytes
// that are not UTF-8 — becomes U+FFFD.
func Escape(s string) string {
	// Fast path: most values (UUIDs, host names) need nothing.
	i := 0
	for i < len(s) {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' {
			break
		}
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&quot;")
		case r == '\'':
			b.WriteString("&apos;")
		case r == '\t':
			b.WriteString("&#9;")
		case r == '\n':
			b.WriteString("&#10;")
		case r == '\r':
			b.WriteString("&#13;")
		case !xmlChar(r) || (r == utf8.RuneError && size == 1):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// xmlChar reports whether XML 1.0 allows r in a document (the Char
// production).
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}

// EscapeFunc is the name under which ParseTemplate offers Escape to
// templates.
const EscapeFunc = "xml"

// ParseTemplate parses a text/template for an XML document and checks that
// every action that prints a value ends in the escaping function, as in
// {{xml .ID}} or {{.ID | xml}}. A template that could print an unescaped
// value is an error, so a value can never break the document's structure.
// The template writes the document without the XML declaration; Respond
// adds it.
func ParseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").
		Funcs(template.FuncMap{EscapeFunc: Escape}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	for _, sub := range t.Templates() {
		if sub.Tree == nil || sub.Root == nil {
			continue
		}
		if err := checkEscaped(sub.Root); err != nil {
			return nil, fmt.Errorf("template %s: %w", sub.Name(), err)
		}
	}
	return t, nil
}

// MustParseTemplate is ParseTemplate for templates fixed in the source: it
// panics on error, which a test of the calling package then reports.
func MustParseTemplate(name, text string) *template.Template {
	t, err := ParseTemplate(name, text)
	if err != nil {
		panic(err)
	}
	return t
}

// checkEscaped walks a parse tree and reports the first printing action
// whose value does not go through EscapeFunc last.
func checkEscaped(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkEscaped(c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		p := n.Pipe
		if len(p.Decl) > 0 {
			return nil // {{$x := …}} assigns, prints nothing
		}
		last := p.Cmds[len(p.Cmds)-1]
		if id, ok := last.Args[0].(*parse.IdentifierNode); ok && id.Ident == EscapeFunc {
			return nil
		}
		return fmt.Errorf("line %d: action %s does not end in %s", n.Line, n, EscapeFunc)
	case *parse.IfNode:
		return checkBranch(&n.BranchNode)
	case *parse.RangeNode:
		return checkBranch(&n.BranchNode)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode)
	}
	return nil
}

func checkBranch(b *parse.BranchNode) error {
	if err := checkEscaped(b.List); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkEscaped(b.ElseList)
	}
	return nil
}
