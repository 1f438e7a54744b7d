package fsapi_test

import (
	"context"
	"fmt"
	"net/url"

	"channels/internal/fsapi"
)

// hello answers section=hello&who=… with a greeting; every printed value
// goes through xml, which ParseTemplate insists on.
type hello struct{ doc *fsapi.Document }

func (hello) Requires() []fsapi.Pair { return []fsapi.Pair{{Key: "section", Value: "hello"}} }

func (h hello) Process(_ context.Context, form url.Values) (fsapi.Document, error) {
	if form.Get("who") == "" {
		return fsapi.Document{}, fsapi.ErrNotFound
	}
	return fsapi.Document{Template: h.doc.Template, Data: form.Get("who")}, nil
}

func Example() {
	t := fsapi.MustParseTemplate("hello", `<document type="freeswitch/xml">
  <section name="hello">
    <greeting to="{{xml .}}"/>
  </section>
</document>
`)
	reg := fsapi.NewRegistry(nil)
	reg.Add(hello{&fsapi.Document{Template: t}}) // the first matching handler answers
	fmt.Printf("%s", reg.Respond(context.Background(), url.Values{"section": {"hello"}, "who": {`"<you>"`}}))
	fmt.Printf("%s", reg.Respond(context.Background(), url.Values{"section": {"hello"}}))
	// Output:
	// <?xml version="1.0" encoding="UTF-8" standalone="no"?>
	// <document type="freeswitch/xml">
	//   <section name="hello">
	//     <greeting to="&quot;&lt;you&gt;&quot;"/>
	//   </section>
	// </document>
	// <?xml version="1.0" encoding="UTF-8" standalone="no"?>
	// <document type="freeswitch/xml">
	//   <section name="result">
	//     <result status="not found"/>
	//   </section>
	// </document>
}
