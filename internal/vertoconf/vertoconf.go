// Package vertoconf serves mod_verto's configuration (verto.conf) through
// /fsapi, so the Verto profile always follows this deployment's settings:
// one profile bound to the configured address, users authenticated against
// the directory (userauth true, blind-reg false), every login forced into
// the Verto domain, and a secure (TLS) listener when a certificate is set.
// Without one the listener is plain (put a TLS proxy in front), and the
// profile names the FreeSWITCH pack's placeholder certificate, which
// mod_verto loads whether or not a listener is secure.
// Every other configuration name falls through to not found, so FreeSWITCH
// reads its local files for them.
package vertoconf

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"channels/internal/config"
	"channels/internal/fsapi"
)

// PlaceholderCert is the certificate and key the profile names when no
// certificate is configured, as FreeSWITCH's configuration names files
// ($${conf_dir} is its configuration directory). mod_verto sets up TLS
// for every profile when it loads, secure listener or not, and logs an
// error when the profile names no certificate it can read; no listener
// ever serves this one. Whoever sets FreeSWITCH up puts a certificate
// there: the FreeSWITCH pack (package freeswitch) writes a fresh
// self-signed one.
const PlaceholderCert = "$${conf_dir}/" + PlaceholderCertFile

// PlaceholderCertFile is PlaceholderCert's path in FreeSWITCH's
// configuration directory.
const PlaceholderCertFile = "tls/placeholder.pem"

// Options configure the served profile.
type Options struct {
	// Bind is the address mod_verto listens on (bind-local), host:port.
	Bind string
	// Domain is force-register-domain: the domain of every Verto login.
	Domain string
	// TLSCert, when set, is the PEM file with certificate, chain and key
	// (secure-combined, secure-chain) and makes the listener secure.
	TLSCert string
	// Placeholder, used when TLSCert is empty, is a certificate and key
	// for mod_verto to load and serve on no listener: it sets up TLS for
	// every profile and logs an error when it finds no certificate.
	Placeholder string
}

// FromConfig takes the options from the deployment's configuration.
func FromConfig(c config.Config) Options {
	o := Options{Bind: c.VertoBind, Domain: c.VertoDomain(), TLSCert: c.VertoTLSCert}
	if o.TLSCert == "" {
		o.Placeholder = PlaceholderCert
	}
	return o
}

const profileTemplate = `<document type="freeswitch/xml">
  <section name="configuration">
    <configuration name="verto.conf" description="HTML5 Verto Endpoint">
      <settings>
        <param name="debug" value="0"/>
        <param name="enable-fs-events" value="false"/>
      </settings>
      <profiles>
        <profile name="channels">
{{- if .TLSCert}}
          <param name="bind-local" value="{{xml .Bind}}" secure="true"/>
          <param name="secure-combined" value="{{xml .TLSCert}}"/>
          <param name="secure-chain" value="{{xml .TLSCert}}"/>
{{- else}}
          <param name="bind-local" value="{{xml .Bind}}"/>
{{- if .Placeholder}}
          <param name="secure-combined" value="{{xml .Placeholder}}"/>
{{- end}}
{{- end}}
          <param name="force-register-domain" value="{{xml .Domain}}"/>
          <param name="userauth" value="true"/>
          <param name="blind-reg" value="false"/>
          <param name="context" value="public"/>
        </profile>
      </profiles>
    </configuration>
  </section>
</document>
`

// Register adds the verto.conf handler to reg.
func Register(reg *fsapi.Registry, opts Options) error {
	if opts.Bind == "" {
		return errors.New("vertoconf: no bind address")
	}
	if opts.Domain == "" {
		return errors.New("vertoconf: no domain")
	}
	t, err := fsapi.ParseTemplate("verto.conf", profileTemplate)
	if err != nil {
		return fmt.Errorf("vertoconf: %w", err)
	}
	reg.Add(&Handler{doc: fsapi.Document{Template: t, Data: opts}})
	return nil
}

// Handler answers the configuration lookup of verto.conf.
type Handler struct {
	doc fsapi.Document
}

// Requires implements fsapi.Handler.
func (h *Handler) Requires() []fsapi.Pair {
	return []fsapi.Pair{
		{Key: "section", Value: "configuration"},
		{Key: "key_value", Value: "verto.conf"},
	}
}

// Process implements fsapi.Handler.
func (h *Handler) Process(context.Context, url.Values) (fsapi.Document, error) {
	return h.doc, nil
}
