package fsapi

import (
	"bytes"
	"testing"
)

type renderData struct {
	ID, Name string
	hidden   string
}

type named string

type withMethod struct{ ID string }

func (withMethod) Name() string { return "from a method" }

type namedData struct{ ID named }

// TestRenderMatchesTemplate: a plan renders exactly what text/template
// does, and declines whatever it cannot render the same.
func TestRenderMatchesTemplate(t *testing.T) {
	const odd = "a&b<c>\"d'e\tf\ng\rh\x01i\xffj\u00e9k"
	for _, tc := range []struct {
		name, text string
		data       any
		planned    bool
	}{
		{"text only", "<document/>\n", nil, true},
		{"fields", `<u id="{{xml .ID}}" name="{{.Name | xml}}"/>`, renderData{ID: "x", Name: odd}, true},
		{"trim markers", "<u>\n  {{- xml .ID -}}\n</u>", renderData{ID: odd}, true},
		{"if", `{{if .ID}}<u id="{{xml .ID}}"/>{{end}}`, renderData{ID: "x"}, false},
		{"map data", `<u id="{{xml .ID}}"/>`, map[string]string{"ID": "x"}, false},
		{"pointer data", `<u id="{{xml .ID}}"/>`, &renderData{ID: "x"}, false},
		{"method", `<u id="{{xml .ID}}" name="{{xml .Name}}"/>`, withMethod{ID: "x"}, false},
		{"named string", `<u id="{{xml .ID}}"/>`, namedData{ID: "x"}, false},
		{"missing field", `<u id="{{xml .Nope}}"/>`, renderData{}, false},
		{"unexported field", `<u id="{{xml .hidden}}"/>`, renderData{hidden: "x"}, false},
		{"chained field", `<u id="{{xml .ID.Len}}"/>`, renderData{}, false},
		{"define", `{{define "x"}}y{{end}}<u id="{{xml .ID}}"/>`, renderData{ID: "x"}, false},
		{"assign", `{{$x := .ID}}<u id="{{xml $x}}"/>`, renderData{ID: "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(tc.name, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			want.WriteString(Declaration)
			wantErr := tmpl.Execute(&want, tc.data)
			var ps plans
			for range 2 { // the plan is made, then reused
				got, ok := ps.render(nil, Declaration, Document{Template: tmpl, Data: tc.data})
				if ok != tc.planned {
					t.Fatalf("rendered by plan: %v, want %v", ok, tc.planned)
				}
				if ok && (wantErr != nil || !bytes.Equal(got, want.Bytes())) {
					t.Fatalf("plan gave\n%q\ntext/template\n%q (err %v)", got, want.Bytes(), wantErr)
				}
			}
			// Parsing again (a new tree) makes a new plan.
			if _, err := tmpl.Parse(`<v/>`); err != nil {
				t.Fatal(err)
			}
			got, ok := ps.render(nil, "", Document{Template: tmpl, Data: tc.data})
			if !ok || string(got) != "<v/>" {
				if tc.name != "define" { // still two templates
					t.Fatalf("after a new parse: %q, %v", got, ok)
				}
			}
		})
	}
}
