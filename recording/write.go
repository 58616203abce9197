package recording

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/store"
)

// frame places one frame in its track's file, starting the file when
// it is ready.
func (a *active) frame(p *trackPipe, fr frame) {
	f := p.file
	if f.done {
		return
	}
	if f.mux == nil {
		f.hold(p, fr)
		if f.ready(fr.tc) {
			a.startFile(f)
		}
		return
	}
	a.write(f, p, fr)
}

// startFile fixes the file's tracks, stores its row and header, and
// writes the frames it held.
func (a *active) startFile(f *file) {
	mux, err := f.muxer()
	if err == nil {
		f.id, err = ids.New("f")
	}
	var obj string
	if err == nil {
		obj, err = ids.New("o")
	}
	if err != nil {
		a.svc.Log.Error("start recording file", "recording", a.id, "err", err)
		f.done = true
		return
	}
	f.mux, f.objects = mux, "recordings/"+obj
	a.up.put(job{kind: jobFile, file: f.id, row: store.RecordingFile{ID: f.id, RecordingID: a.id, MemberID: f.member, Kinds: f.kinds(), Format: mux.DocType(), Offset: f.zero}})
	f.header = f.objectName(0)
	a.segment(f, mux.Header(false))
	for _, pf := range f.takePending() {
		a.write(f, pf.t, pf.frame)
	}
}

func (a *active) write(f *file, p *trackPipe, fr frame) {
	tc := fr.tc - f.zero.Milliseconds()
	closed, err := f.mux.Write(p.num, tc, fr.key, fr.data)
	if err != nil {
		a.svc.Log.Error("write recording file", "recording", a.id, "file", f.id, "err", err)
		return
	}
	if closed != nil {
		a.segment(f, closed)
		f.asked = false
	}
	if f.video != nil && !f.asked && f.mux.ClusterAge(tc) >= keyframeEvery {
		f.asked = true
		f.video.keyframe()
	}
}

// segment stores the next piece of the file.
func (a *active) segment(f *file, data []byte) {
	a.up.put(job{kind: jobSegment, file: f.id, seq: f.seq, name: f.objectName(f.seq), data: data, dur: time.Duration(f.mux.Duration()) * time.Millisecond})
	f.seq++
}

// finishFile stores the end of the file (its last cluster and Cues) and
// its finished header.
func (a *active) finishFile(f *file) {
	if f.done {
		return
	}
	if f.mux == nil && len(f.pending) > 0 {
		a.startFile(f)
	}
	f.done = true
	if f.mux == nil {
		return
	}
	if tail := f.mux.Cues(); len(tail) > 0 {
		a.segment(f, tail)
	}
	a.up.put(job{kind: jobHeader, file: f.id, name: f.objects + "/header", old: f.header, data: f.mux.Header(true),
		dur: time.Duration(f.mux.Duration()) * time.Millisecond})
}

type jobKind int

const (
	jobFile jobKind = iota
	jobSegment
	jobHeader
)

// job is one write of a file, done in order by the uploader.
type job struct {
	kind jobKind
	file string
	row  store.RecordingFile
	seq  int
	name string
	old  string // jobHeader: the header it replaces
	data []byte
	dur  time.Duration
}

// uploadQueue bounds the pieces waiting to be stored; when storage falls
// this far behind, the recording's goroutine waits (and the node's
// packets beyond packetQueue are dropped).
const uploadQueue = 8

// uploader stores a recording's pieces in order on its own goroutine.
type uploader struct {
	svc    *Service
	rec    string
	jobs   chan job
	done   chan struct{}
	failed map[string]bool
	any    bool
}

func newUploader(s *Service, rec string) *uploader {
	return &uploader{svc: s, rec: rec, jobs: make(chan job, uploadQueue), done: make(chan struct{}), failed: map[string]bool{}}
}

func (u *uploader) put(j job) { u.jobs <- j }

// close waits for every queued job; it reports whether a file could not
// be stored whole.
func (u *uploader) close() bool {
	close(u.jobs)
	<-u.done
	return u.any
}

func (u *uploader) run() {
	defer close(u.done)
	for j := range u.jobs {
		if u.failed[j.file] {
			continue
		}
		if err := u.do(j); err != nil {
			u.svc.Log.Error("store recording", "recording", u.rec, "file", j.file, "segment", j.seq, "err", err)
			u.failed[j.file], u.any = true, true
		}
	}
}

// do runs one job, trying a failed write up to three times.
func (u *uploader) do(j job) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = u.once(ctx, j)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

func (u *uploader) once(ctx context.Context, j job) error {
	s := u.svc
	switch j.kind {
	case jobFile:
		return s.Store.AddRecordingFile(ctx, j.row)
	case jobSegment:
		obj, err := s.Objects.Put(ctx, j.name, bytes.NewReader(j.data))
		if err != nil {
			return err
		}
		return s.Store.PutRecordingSegment(ctx, store.RecordingSegment{FileID: j.file, Seq: j.seq, Object: obj.Name, KeyEnc: obj.SealedKey, Size: obj.Size}, j.dur, s.Now().UTC())
	}
	// jobHeader: the finished header goes to a new object, so that the
	// stored file stays readable whatever step a crash interrupts.
	obj, err := s.Objects.Put(ctx, j.name, bytes.NewReader(j.data))
	if err != nil {
		return err
	}
	if err := s.Store.PutRecordingSegment(ctx, store.RecordingSegment{FileID: j.file, Seq: 0, Object: obj.Name, KeyEnc: obj.SealedKey, Size: obj.Size}, j.dur, s.Now().UTC()); err != nil {
		return err
	}
	if err := s.Objects.Delete(ctx, j.old); err != nil {
		s.Log.Error("delete replaced recording header", "recording", u.rec, "object", j.old, "err", err)
	}
	return s.Store.FinishRecordingFile(ctx, j.file, j.dur)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
