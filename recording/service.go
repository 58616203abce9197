package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/store"
)

// Audit events written here; the consent events are the live consult's.
const (
	EventStarted    = audit.TypeRecordingStarted
	EventStopped    = audit.TypeRecordingStopped
	EventViewed     = audit.TypeRecordingViewed
	EventDownloaded = audit.TypeRecordingDownloaded
	EventDeleted    = audit.TypeRecordingDeleted
)

// Store is what recordings need of the database.
type Store interface {
	CreateRecording(ctx context.Context, r store.Recording, consents []store.RecordingConsent) error
	AddRecordingFile(ctx context.Context, f store.RecordingFile) error
	PutRecordingSegment(ctx context.Context, s store.RecordingSegment, duration time.Duration, now time.Time) error
	FinishRecordingFile(ctx context.Context, fileID string, duration time.Duration) error
	EndRecording(ctx context.Context, id string, endedAt time.Time, state, reason string, duration time.Duration) (bool, error)
	RecordingByID(ctx context.Context, consultID, id string) (store.Recording, error)
	RecordingsByConsult(ctx context.Context, consultID string) ([]store.Recording, error)
	RecordingFiles(ctx context.Context, recordingID string) ([]store.RecordingFile, error)
	RecordingConsents(ctx context.Context, recordingID string) ([]store.RecordingConsent, error)
	RecordingSegments(ctx context.Context, fileID string) ([]store.RecordingSegment, error)
	LegalHold(ctx context.Context, consultID string) (bool, error)
	DestroyRecordingKeys(ctx context.Context, id string, now time.Time) error
	RecordingObjects(ctx context.Context, id string) ([]string, error)
	MarkRecordingDeleted(ctx context.Context, id string, now time.Time) (bool, error)
}

// Objects stores recordings' segments encrypted (objstore.Store).
type Objects interface {
	Put(ctx context.Context, name string, r io.Reader) (objstore.Object, error)
	Open(ctx context.Context, o objstore.Object) (*objstore.Reader, error)
	Delete(ctx context.Context, name string) error
}

// Sealer seals consent names (keyring.Keyring).
type Sealer interface {
	SealString(plain string, aad []byte) ([]byte, error)
	UnsealString(sealed []byte, aad []byte) (string, error)
}

// Auditor writes audit entries (the audit recorder of cmd/signal).
type Auditor interface {
	RecordSession(ctx context.Context, event, consultID, memberID, message string, fields map[string]string) error
}

// Errors a caller can act on.
var (
	ErrBadRequest = errors.New("recording: incomplete start request")
	ErrRecording  = errors.New("this consult is being recorded already")
	ErrRunning    = errors.New("this recording is still running")
	ErrLegalHold  = errors.New("this consult is under legal hold: its recordings cannot be deleted")
	ErrDeleted    = errors.New("this recording was deleted")
	ErrNoContent  = errors.New("nothing of this file was stored")
)

// Service records consults and serves their recordings.
type Service struct {
	Store   Store
	Objects Objects
	Sealer  Sealer
	Audit   Auditor
	Log     *slog.Logger
	Now     func() time.Time
	// StopGrace is how long Stop waits for the media node to end the
	// recording before finishing its files without it; 0 means 5 s.
	StopGrace time.Duration

	mu     sync.Mutex
	active map[string]*active
}

func consentAAD(recordingID, memberID string) []byte {
	return []byte("recordings.consent:" + recordingID + ":" + memberID)
}

// Start starts recording a consult whose every member consented: it
// stores the recording and its consents, asks the media node to record
// the room, audits recording.started, and returns the running recording.
func (s *Service) Start(ctx context.Context, req StartRequest) (Active, error) {
	if req.ConsultID == "" || req.RoomID == "" || req.Node == nil || req.RequestedBy == "" || len(req.Consents) == 0 {
		return nil, ErrBadRequest
	}
	if s.Recording(req.ConsultID) != nil {
		return nil, ErrRecording
	}
	id, err := ids.New("r")
	if err != nil {
		return nil, err
	}
	now := s.Now().UTC().Truncate(time.Millisecond)
	consents := make([]store.RecordingConsent, 0, len(req.Consents))
	members := make([]string, 0, len(req.Consents))
	for _, c := range req.Consents {
		name, err := s.Sealer.SealString(c.Name, consentAAD(id, c.MemberID))
		if err != nil {
			return nil, fmt.Errorf("seal consent: %w", err)
		}
		consents = append(consents, store.RecordingConsent{RecordingID: id, MemberID: c.MemberID, AccountID: c.AccountID, NameEnc: name, At: c.At.UTC()})
		members = append(members, c.MemberID)
	}
	if err := s.Store.CreateRecording(ctx, store.Recording{ID: id, ConsultID: req.ConsultID, RequestedBy: req.RequestedBy, StartedAt: now}, consents); err != nil {
		return nil, err
	}
	a := newActive(s, id, req, now)
	rec, err := req.Node.Record(ctx, req.RoomID, a)
	if err != nil {
		s.endRow(id, "failed-to-start", store.RecordingPartial, 0)
		return nil, fmt.Errorf("start recording %s: %w", id, err)
	}
	a.node = rec
	fields := map[string]string{"recording": id, "members": strings.Join(members, ",")}
	if req.Request != "" {
		fields["request"] = req.Request
	}
	if err := s.Audit.RecordSession(ctx, EventStarted, req.ConsultID, req.RequestedBy, "recording started with every member's consent", fields); err != nil {
		rec.Stop()
		s.endRow(id, "audit-failed", store.RecordingPartial, 0)
		return nil, fmt.Errorf("audit recording %s: %w", id, err)
	}
	s.mu.Lock()
	if s.active == nil {
		s.active = map[string]*active{}
	}
	s.active[id] = a
	s.mu.Unlock()
	go a.run()
	s.Log.Info("recording started", "consult", req.ConsultID, "recording", id, "members", len(members))
	return a, nil
}

// endRow ends a recording's row when it never ran.
func (s *Service) endRow(id, reason, state string, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Store.EndRecording(ctx, id, s.Now().UTC(), state, reason, d); err != nil {
		s.Log.Error("end recording", "recording", id, "err", err)
	}
}

// Recording returns the consult's recording that runs in this process,
// or nil.
func (s *Service) Recording(consultID string) Active {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.active {
		if a.req.ConsultID == consultID {
			return a
		}
	}
	return nil
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.active, id)
	s.mu.Unlock()
}

// Shutdown stops every running recording (reason "shutdown") and waits
// until their files are stored or ctx ends.
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	running := make([]*active, 0, len(s.active))
	for _, a := range s.active {
		running = append(running, a)
	}
	s.mu.Unlock()
	for _, a := range running {
		if err := a.Stop(ctx, "shutdown"); err != nil {
			s.Log.Error("stop recording at shutdown", "recording", a.id, "err", err)
		}
	}
}

func (s *Service) grace() time.Duration {
	if s.StopGrace > 0 {
		return s.StopGrace
	}
	return 5 * time.Second
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
