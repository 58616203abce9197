package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/store"
)

// staleAfter: a recording marked running whose last segment is older was
// interrupted (its process stopped) and is shown as partial.
const staleAfter = time.Minute

// Summary describes a recording for the consult's record page.
type Summary struct {
	ID          string
	RequestedBy string
	Started     time.Time
	Ended       time.Time
	State       string // store.RecordingRunning, RecordingComplete or RecordingPartial
	StopReason  string
	Size        int64
	Duration    time.Duration
	Deleted     bool // retention or a deletion destroyed it
	Files       []FileSummary
	Consents    []ConsentSummary
}

// FileSummary is one member's file of a recording.
type FileSummary struct {
	ID       string
	MemberID string
	Name     string // the member's name as they consented
	Kinds    string
	Offset   time.Duration
	Duration time.Duration
	Size     int64
	Complete bool
}

// ConsentSummary is one member's consent.
type ConsentSummary struct {
	MemberID string
	Name     string
	Guest    bool
	At       time.Time
}

// List returns a consult's recordings, oldest first.
func (s *Service) List(ctx context.Context, consultID string) ([]Summary, error) {
	recs, err := s.Store.RecordingsByConsult(ctx, consultID)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	out := make([]Summary, 0, len(recs))
	for _, r := range recs {
		sum := Summary{ID: r.ID, RequestedBy: r.RequestedBy, Started: r.StartedAt, Ended: r.EndedAt, State: r.State, StopReason: r.StopReason,
			Size: r.Size, Duration: r.Duration, Deleted: !r.ExpiredAt.IsZero()}
		if r.State == store.RecordingRunning && now.Sub(r.UpdatedAt) > staleAfter {
			sum.State, sum.StopReason, sum.Duration = store.RecordingPartial, "interrupted", r.UpdatedAt.Sub(r.StartedAt)
		}
		consents, err := s.Store.RecordingConsents(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		names := map[string]string{}
		for _, c := range consents {
			name, err := s.Sealer.UnsealString(c.NameEnc, consentAAD(r.ID, c.MemberID))
			if err != nil {
				return nil, fmt.Errorf("unseal consent of recording %s: %w", r.ID, err)
			}
			names[c.MemberID] = name
			sum.Consents = append(sum.Consents, ConsentSummary{MemberID: c.MemberID, Name: name, Guest: c.AccountID == "", At: c.At})
		}
		files, err := s.Store.RecordingFiles(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			sum.Files = append(sum.Files, FileSummary{ID: f.ID, MemberID: f.MemberID, Name: names[f.MemberID], Kinds: f.Kinds,
				Offset: f.Offset, Duration: f.Duration, Size: f.Size, Complete: f.Complete})
		}
		out = append(out, sum)
	}
	return out, nil
}

// OpenedFile is a recorded file being read; the caller closes Content.
type OpenedFile struct {
	Recording string
	File      string
	Name      string // a download name, without patient data
	Type      string // video/webm, or video/x-matroska
	Size      int64
	Started   time.Time
	Content   io.ReadSeekCloser
}

// OpenFile opens one file of a consult's recording for playback: the
// concatenation of its stored segments, decrypted as it is read.
func (s *Service) OpenFile(ctx context.Context, consultID, recordingID, fileID string) (OpenedFile, error) {
	r, err := s.Store.RecordingByID(ctx, consultID, recordingID)
	if err != nil {
		return OpenedFile{}, err
	}
	if !r.ExpiredAt.IsZero() {
		return OpenedFile{}, ErrDeleted
	}
	files, err := s.Store.RecordingFiles(ctx, recordingID)
	if err != nil {
		return OpenedFile{}, err
	}
	var f *store.RecordingFile
	for i := range files {
		if files[i].ID == fileID {
			f = &files[i]
		}
	}
	if f == nil {
		return OpenedFile{}, store.ErrNotFound
	}
	segs, err := s.Store.RecordingSegments(ctx, fileID)
	if err != nil {
		return OpenedFile{}, err
	}
	if len(segs) == 0 {
		return OpenedFile{}, ErrNoContent
	}
	c := &concat{ctx: ctx, objects: s.Objects}
	for i, sg := range segs {
		if sg.Seq != i || sg.KeyEnc == nil {
			return OpenedFile{}, fmt.Errorf("file %s: segment %d of %d missing: %w", fileID, i, len(segs), objstore.ErrCorrupt)
		}
		c.segs = append(c.segs, objstore.Object{Name: sg.Object, SealedKey: sg.KeyEnc, Size: sg.Size})
		c.starts = append(c.starts, c.size)
		c.size += sg.Size
	}
	started := r.StartedAt.Add(f.Offset)
	ctype, ext := "video/webm", ".webm"
	if f.Format == "matroska" {
		ctype, ext = "video/x-matroska", ".mkv"
	}
	return OpenedFile{Recording: r.ID, File: f.ID, Size: c.size, Started: started, Content: c, Type: ctype,
		Name: "recording-" + started.UTC().Format("20060102-150405") + "-" + f.ID + ext}, nil
}

// concat reads segments as one file, opening one segment at a time.
type concat struct {
	ctx     context.Context
	objects Objects
	segs    []objstore.Object
	starts  []int64
	size    int64

	pos int64
	cur int // index of the open segment, when r is set
	r   *objstore.Reader
}

func (c *concat) Read(p []byte) (int, error) {
	for c.pos < c.size {
		i := c.segment(c.pos)
		if c.r == nil || c.cur != i {
			c.closeCur()
			r, err := c.objects.Open(c.ctx, c.segs[i])
			if err != nil {
				return 0, err
			}
			c.r, c.cur = r, i
		}
		if _, err := c.r.Seek(c.pos-c.starts[i], io.SeekStart); err != nil {
			return 0, err
		}
		n, err := c.r.Read(p)
		c.pos += int64(n)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		if c.pos < c.starts[i]+c.segs[i].Size {
			return 0, fmt.Errorf("segment %d ends early: %w", i, objstore.ErrCorrupt)
		}
	}
	return 0, io.EOF
}

// segment returns the index of the segment holding offset off.
func (c *concat) segment(off int64) int {
	i := len(c.starts) - 1
	for i > 0 && c.starts[i] > off {
		i--
	}
	return i
}

func (c *concat) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += c.pos
	case io.SeekEnd:
		off += c.size
	}
	if off < 0 {
		return 0, errors.New("seek before the start")
	}
	c.pos = off
	return off, nil
}

func (c *concat) closeCur() {
	if c.r != nil {
		c.r.Close()
		c.r = nil
	}
}

func (c *concat) Close() error { c.closeCur(); return nil }
