package consult

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/store"
)

// ErrDocumentExpired: retention deleted the document; the chat still
// says it was shared.
var ErrDocumentExpired = errors.New("this document was deleted at the end of its retention period")

// RetentionStore is what the retention sweeper needs of the database.
type RetentionStore interface {
	DocumentsToExpire(ctx context.Context, cutoff time.Time, limit int) ([]store.Document, error)
	DestroyDocumentKey(ctx context.Context, id string, now time.Time) error
	MarkDocumentDeleted(ctx context.Context, id string, now time.Time) (bool, error)
}

// RecordingRetentionStore is what the sweeper needs of the database for
// recordings.
type RecordingRetentionStore interface {
	RecordingsToExpire(ctx context.Context, cutoff time.Time, limit int) ([]store.Recording, error)
	DestroyRecordingKeys(ctx context.Context, id string, now time.Time) error
	RecordingObjects(ctx context.Context, id string) ([]string, error)
	MarkRecordingDeleted(ctx context.Context, id string, now time.Time) (bool, error)
}

// ObjectDeleter deletes stored objects; deleting one that is gone is no
// error (objstore.Backend).
type ObjectDeleter interface {
	Delete(ctx context.Context, name string) error
}

// RetentionRecorder writes the audit entry of each expired document.
type RetentionRecorder interface {
	RecordSession(ctx context.Context, event, consultID, memberID, message string, fields map[string]string) error
}

// Sweeper deletes shared documents and recordings older than their
// retention periods, except those of consults under legal hold. The
// sealed data keys are destroyed first, so any copy of their objects left
// anywhere (a backup, a replica, an interrupted delete) is unreadable;
// then the objects are deleted, the deletion is audited, and the row
// becomes a tombstone. An interrupted sweep is finished by the next one.
type Sweeper struct {
	Store     RetentionStore
	Objects   ObjectDeleter
	Audit     RetentionRecorder
	Log       *slog.Logger
	Now       func() time.Time
	Retention time.Duration // of documents; 0 keeps them forever
	Every     time.Duration // how often Run sweeps; 0 means hourly

	// Recordings, when set, are swept after RecordingRetention (0 keeps
	// them forever).
	Recordings         RecordingRetentionStore
	RecordingRetention time.Duration
}

// sweepBatch is how many documents one query returns.
const sweepBatch = 64

// Sweep deletes the documents and recordings due now and returns how
// many it deleted.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	now := s.Now()
	docs, err := s.sweepDocuments(ctx, now)
	if err != nil {
		return docs, err
	}
	recs, err := s.sweepRecordings(ctx, now)
	return docs + recs, err
}

func (s *Sweeper) sweepDocuments(ctx context.Context, now time.Time) (int, error) {
	if s.Retention <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-s.Retention)
	done := 0
	for {
		docs, err := s.Store.DocumentsToExpire(ctx, cutoff, sweepBatch)
		if err != nil || len(docs) == 0 {
			return done, err
		}
		for _, d := range docs {
			if err := s.expire(ctx, d, now); err != nil {
				return done, err
			}
			done++
		}
	}
}

func (s *Sweeper) expire(ctx context.Context, d store.Document, now time.Time) error {
	if err := s.Store.DestroyDocumentKey(ctx, d.ID, now); err != nil {
		return err
	}
	if d.Object != "" {
		if err := s.Objects.Delete(ctx, d.Object); err != nil {
			return fmt.Errorf("delete object of document %s: %w", d.ID, err)
		}
	}
	// Audited before the row becomes a tombstone: a sweep interrupted in
	// between audits the document again rather than never.
	if err := s.Audit.RecordSession(ctx, audit.TypeDocumentExpired, d.ConsultID, "", "document deleted at the end of its retention period",
		map[string]string{"document": d.ID, "shared": d.CreatedAt.UTC().Format(time.RFC3339)}); err != nil {
		return fmt.Errorf("audit expired document %s: %w", d.ID, err)
	}
	if _, err := s.Store.MarkDocumentDeleted(ctx, d.ID, now); err != nil {
		return err
	}
	return nil
}

// Run sweeps at once and then every s.Every until ctx ends; a failed
// sweep is logged and retried at the next tick.
func (s *Sweeper) Run(ctx context.Context) {
	if s.Retention <= 0 && (s.Recordings == nil || s.RecordingRetention <= 0) {
		return
	}
	every := s.Every
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := s.Now()
		n, err := s.sweepDocuments(ctx, now)
		if err != nil && ctx.Err() == nil {
			s.Log.Error("document retention sweep", "err", err)
		}
		if n > 0 {
			s.Log.Info("documents deleted at the end of their retention", "documents", n)
		}
		n, err = s.sweepRecordings(ctx, now)
		if err != nil && ctx.Err() == nil {
			s.Log.Error("recording retention sweep", "err", err)
		}
		if n > 0 {
			s.Log.Info("recordings deleted at the end of their retention", "recordings", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sweeper) sweepRecordings(ctx context.Context, now time.Time) (int, error) {
	if s.Recordings == nil || s.RecordingRetention <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-s.RecordingRetention)
	done := 0
	for {
		recs, err := s.Recordings.RecordingsToExpire(ctx, cutoff, sweepBatch)
		if err != nil || len(recs) == 0 {
			return done, err
		}
		for _, r := range recs {
			if err := s.expireRecording(ctx, r, now); err != nil {
				return done, err
			}
			done++
		}
	}
}

// expireRecording destroys the keys of every segment of a recording,
// then deletes their objects, audits, and leaves the recording's row.
func (s *Sweeper) expireRecording(ctx context.Context, r store.Recording, now time.Time) error {
	if err := s.Recordings.DestroyRecordingKeys(ctx, r.ID, now); err != nil {
		return err
	}
	names, err := s.Recordings.RecordingObjects(ctx, r.ID)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := s.Objects.Delete(ctx, n); err != nil {
			return fmt.Errorf("delete object of recording %s: %w", r.ID, err)
		}
	}
	if err := s.Audit.RecordSession(ctx, audit.TypeRecordingExpired, r.ConsultID, "", "recording deleted at the end of its retention period",
		map[string]string{"recording": r.ID, "started": r.StartedAt.UTC().Format(time.RFC3339)}); err != nil {
		return fmt.Errorf("audit expired recording %s: %w", r.ID, err)
	}
	if _, err := s.Recordings.MarkRecordingDeleted(ctx, r.ID, now); err != nil {
		return err
	}
	return nil
}
