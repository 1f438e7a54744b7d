package fsapi

import (
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"text/template"
	"text/template/parse"
)

// Most documents are text with values in it, {{xml .Field}} or
// {{.Field | xml}} of a struct's string fields: the directory entry of
// every Verto login is one. text/template executes such a template by
// reflection, a call of the escaping function through reflect.Value.Call
// and a few allocations per value; rendered here from a plan made once
// per template, the same document costs one allocation. A template with
// anything else in it (if, range, other functions, maps as data) is
// executed by text/template as before: the plan only ever gives the
// bytes text/template would.

// plan is a template compiled to its parts, for the data types seen.
type plan struct {
	root  *parse.ListNode // the parse tree the plan was made from
	parts []part          // nil: the template is not of this simple kind
	// fields caches, for the last data type seen, the index of each
	// part's struct field (nil: that type cannot be rendered here).
	fields atomic.Pointer[fieldIndex]
}

// part is literal text (field "") or the escaped value of a field.
type part struct{ text, field string }

type fieldIndex struct {
	typ reflect.Type
	idx []int // per part: the field's index; -1 for text
	ok  bool
}

// plans holds the plan of each template a registry has rendered.
type plans struct{ m sync.Map } // *template.Template → *plan

// render appends prefix and the document of doc to dst (nil: in one
// allocation of the right size), when its template is simple (see above)
// and its data a struct with those string fields; ok false otherwise, and
// the caller executes the template.
func (ps *plans) render(dst []byte, prefix string, doc Document) (out []byte, ok bool) {
	t := doc.Template
	if t.Tree == nil {
		return nil, false
	}
	var p *plan
	if v, found := ps.m.Load(t); found {
		p = v.(*plan)
	}
	if p == nil || p.root != t.Tree.Root { // a template parsed again makes a new plan
		p = compile(t)
		ps.m.Store(t, p)
	}
	if p.parts == nil {
		return nil, false
	}
	var v reflect.Value
	fi := (*fieldIndex)(nil)
	size := len(prefix)
	for i, pt := range p.parts {
		if pt.field == "" {
			size += len(pt.text)
			continue
		}
		if fi == nil {
			v = reflect.ValueOf(doc.Data)
			if v.Kind() != reflect.Struct {
				return nil, false
			}
			if fi = p.index(v.Type()); !fi.ok {
				return nil, false
			}
		}
		size += v.Field(fi.idx[i]).Len() // escaping may add some: append grows
	}
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	dst = append(slices.Grow(dst, size), prefix...)
	for i, pt := range p.parts {
		if pt.field == "" {
			dst = append(dst, pt.text...)
			continue
		}
		dst = appendEscaped(dst, v.Field(fi.idx[i]).String())
	}
	return dst, true
}

// index returns the field indexes of typ for p's parts.
func (p *plan) index(typ reflect.Type) *fieldIndex {
	if fi := p.fields.Load(); fi != nil && fi.typ == typ {
		return fi
	}
	fi := &fieldIndex{typ: typ, idx: make([]int, len(p.parts)), ok: true}
	for i, pt := range p.parts {
		fi.idx[i] = -1
		if pt.field == "" {
			continue
		}
		// text/template prefers a method of that name, and refuses
		// unexported fields and values that are not plain strings.
		if _, isMethod := typ.MethodByName(pt.field); isMethod {
			fi.ok = false
			break
		}
		sf, found := typ.FieldByName(pt.field)
		if !found || !sf.IsExported() || len(sf.Index) != 1 || sf.Type != stringType {
			fi.ok = false
			break
		}
		fi.idx[i] = sf.Index[0]
	}
	p.fields.Store(fi)
	return fi
}

var stringType = reflect.TypeFor[string]()

// compile makes t's plan; its parts are nil when t is not simple: one
// template (no definitions), of text and actions {{xml .F}} or
// {{.F | xml}} only.
func compile(t *template.Template) *plan {
	p := &plan{root: t.Tree.Root}
	if len(t.Templates()) != 1 || t.Tree.Root == nil {
		return p
	}
	var parts []part
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, part{text: string(n.Text)})
		case *parse.ActionNode:
			f := escapedField(n.Pipe)
			if f == "" {
				return p
			}
			parts = append(parts, part{field: f})
		default:
			return p
		}
	}
	if parts == nil {
		parts = []part{}
	}
	p.parts = parts
	return p
}

// escapedField returns F when pipe is "xml .F" or ".F | xml"; "" otherwise.
func escapedField(pipe *parse.PipeNode) string {
	if pipe == nil || len(pipe.Decl) > 0 || pipe.IsAssign {
		return ""
	}
	isXML := func(c *parse.CommandNode) bool {
		id, ok := c.Args[0].(*parse.IdentifierNode)
		return ok && id.Ident == EscapeFunc
	}
	field := func(n parse.Node) string {
		f, ok := n.(*parse.FieldNode)
		if !ok || len(f.Ident) != 1 {
			return ""
		}
		return f.Ident[0]
	}
	switch c := pipe.Cmds; {
	case len(c) == 1 && len(c[0].Args) == 2 && isXML(c[0]):
		return field(c[0].Args[1])
	case len(c) == 2 && len(c[0].Args) == 1 && len(c[1].Args) == 1 && isXML(c[1]):
		return field(c[0].Args[0])
	}
	return ""
}

// appendEscaped appends Escape(s) to dst.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' {
			return append(dst, Escape(s)...)
		}
	}
	return append(dst, s...)
}
