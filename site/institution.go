package site

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
)

// Institution is who the patient is visiting: its name and optional logo
// head the patient's pages (join page, waiting room) and every other page.
type Institution struct {
	Name string
	Logo Logo
}

// Logo is an institution's picture, checked when the server starts.
type Logo struct {
	Data        []byte
	ContentType string // image/png, image/jpeg, image/webp or image/gif
}

// MaxLogoBytes bounds a logo file: it is served to every patient.
const MaxLogoBytes = 256 << 10

// ErrLogoFormat is returned for a logo that is not PNG, JPEG, WebP or GIF.
// SVG is refused: it can carry scripts and links, and a raster picture of
// the logo does the same job.
var ErrLogoFormat = errors.New("logo must be a PNG, JPEG, WebP or GIF picture (SVG is not accepted: export it as PNG)")

// logoPath is where the site serves the logo.
const logoPath = "/institution-logo"

// LoadLogo reads and checks a logo file.
func LoadLogo(path string) (Logo, error) {
	f, err := os.Open(path)
	if err != nil {
		return Logo{}, fmt.Errorf("open logo: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxLogoBytes+1))
	if err != nil {
		return Logo{}, fmt.Errorf("read logo: %w", err)
	}
	if len(data) > MaxLogoBytes {
		return Logo{}, fmt.Errorf("logo is larger than %d KiB", MaxLogoBytes>>10)
	}
	return ParseLogo(data)
}

// logoMagic are the signatures of the accepted formats.
var logoMagic = []struct {
	prefix      []byte
	offset      int
	contentType string
}{
	{[]byte("\x89PNG\r\n\x1a\n"), 0, "image/png"},
	{[]byte("\xff\xd8\xff"), 0, "image/jpeg"},
	{[]byte("GIF87a"), 0, "image/gif"},
	{[]byte("GIF89a"), 0, "image/gif"},
	{[]byte("WEBP"), 8, "image/webp"}, // after "RIFF" and the size
}

// ParseLogo names the format of a logo from its first bytes; anything else,
// SVG included, is refused.
func ParseLogo(data []byte) (Logo, error) {
	if len(data) > MaxLogoBytes {
		return Logo{}, fmt.Errorf("logo is larger than %d KiB", MaxLogoBytes>>10)
	}
	for _, m := range logoMagic {
		if len(data) >= m.offset+len(m.prefix) && bytes.Equal(data[m.offset:m.offset+len(m.prefix)], m.prefix) &&
			(m.contentType != "image/webp" || bytes.HasPrefix(data, []byte("RIFF"))) {
			return Logo{Data: data, ContentType: m.contentType}, nil
		}
	}
	return Logo{}, ErrLogoFormat
}

// logo serves the institution's logo, or nothing when none is configured.
func (s *Site) logo(w http.ResponseWriter, r *http.Request) {
	l := s.opt.Institution.Logo
	if len(l.Data) == 0 {
		s.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", l.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(l.Data)))
	w.Header().Set("Cache-Control", "public, max-age=3600")
	if r.Method != http.MethodHead {
		_, _ = w.Write(l.Data)
	}
}
