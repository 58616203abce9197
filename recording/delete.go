package recording

import (
	"context"
	"fmt"
	"time"

	"github.com/openconsult/openconsult/store"
)

// Delete deletes a finished recording of a consult not under legal hold,
// as retention does: its keys first (so any leftover copy is unreadable),
// then its objects; the row stays as the record that it existed. by is
// the account that asked; recording.deleted is audited.
func (s *Service) Delete(ctx context.Context, consultID, recordingID, by string) error {
	r, err := s.Store.RecordingByID(ctx, consultID, recordingID)
	if err != nil {
		return err
	}
	if !r.DeletedAt.IsZero() {
		return ErrDeleted
	}
	if r.State == store.RecordingRunning && r.ExpiredAt.IsZero() && s.Now().Sub(r.UpdatedAt) <= staleAfter {
		return ErrRunning
	}
	hold, err := s.Store.LegalHold(ctx, consultID)
	if err != nil {
		return err
	}
	if hold && r.ExpiredAt.IsZero() {
		return ErrLegalHold
	}
	now := s.Now().UTC()
	if err := destroyRecording(ctx, s.Store, s.Objects, r.ID, now); err != nil {
		return err
	}
	if err := s.Audit.RecordSession(ctx, EventDeleted, consultID, by, "recording deleted",
		map[string]string{"recording": r.ID, "started": r.StartedAt.UTC().Format(time.RFC3339)}); err != nil {
		return fmt.Errorf("audit deleted recording %s: %w", r.ID, err)
	}
	if _, err := s.Store.MarkRecordingDeleted(ctx, r.ID, now); err != nil {
		return err
	}
	s.Log.Info("recording deleted", "consult", consultID, "recording", r.ID, "by", by)
	return nil
}

// Destroyer is what destroying a recording needs of the database.
type Destroyer interface {
	DestroyRecordingKeys(ctx context.Context, id string, now time.Time) error
	RecordingObjects(ctx context.Context, id string) ([]string, error)
}

// Deleter deletes stored objects; deleting a missing one is no error.
type Deleter interface {
	Delete(ctx context.Context, name string) error
}

// destroyRecording destroys the sealed keys of a recording's segments and
// then deletes its objects. The caller audits and then marks it deleted
// (store.MarkRecordingDeleted); an interrupted call is finished by the
// next one.
func destroyRecording(ctx context.Context, db Destroyer, objects Deleter, id string, now time.Time) error {
	if err := db.DestroyRecordingKeys(ctx, id, now); err != nil {
		return err
	}
	names, err := db.RecordingObjects(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := objects.Delete(ctx, n); err != nil {
			return fmt.Errorf("delete object of recording %s: %w", id, err)
		}
	}
	return nil
}
