package sso

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
)

// AssertionLedger remembers the SAML assertions that signed someone in
// until they expire, for every server of the site, so that none signs in
// twice. ConsumeSAMLAssertion records the assertion and reports false when
// it was recorded before.
type AssertionLedger interface {
	ConsumeSAMLAssertion(ctx context.Context, provider, assertionID string, expires, now time.Time) (fresh bool, err error)
}

// MetadataRefresh is how long an identity provider's metadata fetched from
// its URL is used before it is fetched again (at the next sign-in); a
// failed refresh keeps the metadata in hand until the one after.
const MetadataRefresh = 24 * time.Hour

// Bounds of what the assertion consumer service reads.
const (
	maxSAMLResponse = 512 << 10 // base64 of the posted Response
	maxAssertionID  = 256
	maxSubject      = 256
)

var samlAAD = []byte("openconsult sso saml flow v1")

type samlProvider struct {
	cfg  SAMLProvider
	base saml.ServiceProvider // this platform's side, without the IdP's metadata

	mu       sync.Mutex
	idp      *saml.EntityDescriptor // from the file, or fetched at first use
	fetched  time.Time
	retryAt  time.Time // after a failed refresh
	fromFile bool
}

func newSAMLProvider(cfg SAMLProvider, public *url.URL) (*samlProvider, error) {
	at := func(path string) url.URL {
		u := *public
		u.Path, u.RawQuery, u.Fragment = "/signin/sso/"+cfg.Name+"/"+path, "", ""
		return u
	}
	p := &samlProvider{cfg: cfg, base: saml.ServiceProvider{
		EntityID:                         cfg.EntityID,
		MetadataURL:                      at("metadata"),
		AcsURL:                           at("acs"),
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		RejectSHA1Signatures:             true,
	}}
	if cfg.ForceAuthn {
		force := true
		p.base.ForceAuthn = &force
	}
	if cfg.MetadataFile != "" {
		b, err := os.ReadFile(cfg.MetadataFile)
		if err != nil {
			return nil, fmt.Errorf("provider %s: metadata file: %w", cfg.Name, err)
		}
		idp, err := parseIDPMetadata(b, cfg.IDPEntityID)
		if err != nil {
			return nil, fmt.Errorf("provider %s: metadata file: %w", cfg.Name, err)
		}
		p.idp, p.fromFile = idp, true
	}
	return p, nil
}

func parseIDPMetadata(b []byte, entityID string) (*saml.EntityDescriptor, error) {
	if entityID != "" {
		return samlsp.ParseMetadataByEntityID(b, entityID)
	}
	return samlsp.ParseMetadata(b)
}

// metadata returns the identity provider's metadata, fetching it at first
// use and again when it is older than MetadataRefresh.
func (p *samlProvider) metadata(ctx context.Context, f *Flows) (*saml.EntityDescriptor, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := f.now()
	if p.fromFile || (p.idp != nil && (now.Sub(p.fetched) < MetadataRefresh || now.Before(p.retryAt))) {
		return p.idp, nil
	}
	u, _ := url.Parse(p.cfg.MetadataURL) // checked by SAMLProvider.Check
	var idp *saml.EntityDescriptor
	var err error
	if p.cfg.IDPEntityID != "" {
		idp, err = samlsp.FetchMetadataByEntityID(ctx, f.client, *u, p.cfg.IDPEntityID)
	} else {
		idp, err = samlsp.FetchMetadata(ctx, f.client, *u)
	}
	switch {
	case err == nil:
		p.idp, p.fetched = idp, now
	case p.idp != nil:
		p.retryAt = now.Add(5 * time.Minute)
	default:
		return nil, fail("metadata unavailable", err)
	}
	return p.idp, nil
}

// serviceProvider is this platform's side with the identity provider's
// metadata, a value of its own for each request.
func (p *samlProvider) serviceProvider(ctx context.Context, f *Flows) (*saml.ServiceProvider, error) {
	idp, err := p.metadata(ctx, f)
	if err != nil {
		return nil, err
	}
	sp := p.base
	sp.IDPMetadata = idp
	sp.HTTPClient = f.client
	return &sp, nil
}

func (f *Flows) beginSAML(ctx context.Context, p *samlProvider) (authURL, sealed string, err error) {
	sp, err := p.serviceProvider(ctx, f)
	if err != nil {
		return "", "", err
	}
	location := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	if location == "" {
		return "", "", fail("no redirect binding at the provider", nil)
	}
	req, err := sp.MakeAuthenticationRequest(location, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return "", "", fail("could not start", err)
	}
	st := flowState{Provider: p.cfg.Name, State: random(), Request: req.ID, Expires: f.now().Add(FlowTTL).Unix()}
	if sealed, err = f.seal(st, samlAAD); err != nil {
		return "", "", err
	}
	u, err := req.Redirect(st.State, sp)
	if err != nil {
		return "", "", fail("could not start", err)
	}
	return u.String(), sealed, nil
}

// FinishSAML completes a sign-in from the identity provider's HTTP-POST to
// the assertion consumer service: form is the posted form (SAMLResponse,
// RelayState), sealed the value Begin returned. The response must answer
// the request this browser started, and its assertion must be signed by a
// certificate of the provider's metadata, be meant for this platform
// (audience, recipient), be within its validity period, and never have
// been accepted before.
func (f *Flows) FinishSAML(ctx context.Context, name string, form url.Values, sealed string) (Identity, error) {
	p, ok := f.saml[name]
	if !ok {
		return Identity{}, fail("unknown provider", nil)
	}
	st, err := f.open(sealed, samlAAD)
	if err != nil || st.Provider != name || f.now().Unix() > st.Expires || st.Request == "" {
		return Identity{}, fail("sign-in expired or not started here", err)
	}
	if subtle.ConstantTimeCompare([]byte(form.Get("RelayState")), []byte(st.State)) != 1 {
		return Identity{}, fail("state mismatch", nil)
	}
	raw, err := decodeSAMLResponse(form.Get("SAMLResponse"))
	if err != nil {
		return Identity{}, err
	}
	sp, err := p.serviceProvider(ctx, f)
	if err != nil {
		return Identity{}, err
	}
	sp.ReplayCache = ledgerCache{ctx: ctx, ledger: f.ledger, provider: name, now: f.now}
	a, err := sp.ParseXMLResponse(raw, []string{st.Request}, sp.AcsURL)
	if le, ok := errors.AsType[ledgerError](err); ok {
		return Identity{}, fmt.Errorf("saml replay check: %w", le.err)
	}
	if err != nil {
		// Only the category: the response's content stays out of logs.
		reason, category := samlReason(err)
		return Identity{}, fail(reason, category)
	}
	return p.identity(a)
}

// decodeSAMLResponse reads the posted SAMLResponse: base64 of the XML,
// bounded in size.
func decodeSAMLResponse(v string) ([]byte, error) {
	if v == "" {
		return nil, fail("no response", nil)
	}
	if len(v) > maxSAMLResponse {
		return nil, fail("response too large", nil)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fail("response unreadable", nil)
	}
	return b, nil
}

// samlReason names why a response was refused, from crewjam/saml's error
// categories, and returns the category (never the detailed error, which
// may quote the response).
func samlReason(err error) (string, error) {
	var status saml.ErrBadStatus
	if unsigned(err) {
		return "assertion unsigned", saml.ErrInvalidSignature
	}
	table := []struct {
		category error
		reason   string
	}{
		{saml.ErrAssertionReplayed, "assertion replayed"},
		{saml.ErrInvalidSignature, "assertion signature"},
		{saml.ErrUntrustedCertificate, "assertion signature"},
		{saml.ErrCertificateNotValidNow, "assertion signature"},
		{saml.ErrExpired, "assertion expired"},
		{saml.ErrNotYetValid, "assertion not yet valid"},
		{saml.ErrAudienceMismatch, "assertion audience"},
		{saml.ErrRequestIDMismatch, "request mismatch"},
		{saml.ErrIssuerMismatch, "assertion issuer"},
		{saml.ErrDestinationMismatch, "assertion recipient"},
		{saml.ErrMalformedMessage, "response malformed"},
		{saml.ErrMissingElement, "response incomplete"},
		{saml.ErrUnsupported, "response unsupported"},
		{saml.ErrDecryptionFailed, "assertion encrypted"},
	}
	for _, row := range table {
		if errors.Is(err, row.category) {
			return row.reason, row.category
		}
	}
	if errors.As(err, &status) {
		return "provider refused", nil
	}
	return "response invalid", nil
}

// unsigned reports crewjam/saml's refusal of a response in which neither
// the Response nor the assertion is signed (an error it does not export).
func unsigned(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "signature element not present" {
			return true
		}
	}
	return false
}

// ledgerCache is crewjam/saml's replay cache over the ledger, for one
// request.
type ledgerCache struct {
	ctx      context.Context
	ledger   AssertionLedger
	provider string
	now      func() time.Time
}

func (c ledgerCache) Consume(id string, expires time.Time) error {
	if len(id) > maxAssertionID {
		return fmt.Errorf("assertion id too long: %w", saml.ErrMalformedMessage)
	}
	fresh, err := c.ledger.ConsumeSAMLAssertion(c.ctx, c.provider, id, expires, c.now())
	switch {
	case err != nil:
		return ledgerError{err}
	case !fresh:
		return saml.ErrAssertionReplayed
	}
	return nil
}

// ledgerError is a ledger that could not answer: the site's fault, not a
// refusal.
type ledgerError struct{ err error }

func (e ledgerError) Error() string { return "assertion ledger: " + e.err.Error() }

func (p *samlProvider) identity(a *saml.Assertion) (Identity, error) {
	var nameID, format string
	if a.Subject != nil && a.Subject.NameID != nil {
		nameID, format = a.Subject.NameID.Value, a.Subject.NameID.Format
	}
	subject := nameID
	if p.cfg.SubjectAttribute != "" {
		subject = first(attributeValues(a, p.cfg.SubjectAttribute))
	} else if format == string(saml.TransientNameIDFormat) {
		return Identity{}, fail("transient subject", nil)
	}
	if subject == "" || len(subject) > maxSubject {
		return Identity{}, fail("no subject", nil)
	}
	username := nameID
	if p.cfg.UsernameAttribute != "" {
		username = first(attributeValues(a, p.cfg.UsernameAttribute))
	}
	groups := attributeValues(a, p.cfg.groupsAttribute())
	return Identity{Provider: p.cfg.Name, Subject: subject, Username: username, Groups: groups, Role: p.cfg.Role(groups)}, nil
}

// attributeValues lists the values of the attributes named name (by Name
// or FriendlyName) in the assertion's attribute statements.
func attributeValues(a *saml.Assertion, name string) []string {
	var out []string
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			if attr.Name != name && attr.FriendlyName != name {
				continue
			}
			for _, v := range attr.Values {
				if v.Value != "" {
					out = append(out, v.Value)
				}
			}
		}
	}
	return out
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// SAMLMetadata is this platform's service provider metadata for the SAML
// provider name, to register at the identity provider.
func (f *Flows) SAMLMetadata(name string) ([]byte, error) {
	p, ok := f.saml[name]
	if !ok {
		return nil, fail("unknown provider", nil)
	}
	sp := p.base
	b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sp metadata: %w", err)
	}
	return append([]byte(xml.Header), b...), nil
}
