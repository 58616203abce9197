package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Recording states.
const (
	RecordingRunning  = "recording"
	RecordingComplete = "complete"
	RecordingPartial  = "partial"
)

// Recording is one recording of a consult.
type Recording struct {
	ID          string
	ConsultID   string
	RequestedBy string
	StartedAt   time.Time
	UpdatedAt   time.Time // last stored segment, while it runs
	EndedAt     time.Time
	State       string
	StopReason  string
	Size        int64 // bytes of its files
	Duration    time.Duration
	ExpiredAt   time.Time // keys destroyed (retention or deletion)
	DeletedAt   time.Time // objects deleted too
}

// RecordingFile is one member's WebM file of a recording.
type RecordingFile struct {
	ID          string
	RecordingID string
	MemberID    string
	Kinds       string        // "audio", "video" or "audio+video"
	Format      string        // "webm", or "matroska" (H.264 video); "" is "webm"
	Offset      time.Duration // its start after the recording's
	Duration    time.Duration
	Size        int64
	Complete    bool
}

// RecordingSegment is one stored object of a file: the file is the
// concatenation of its segments in Seq order.
type RecordingSegment struct {
	FileID string
	Seq    int
	Object string
	KeyEnc []byte
	Size   int64
}

// RecordingConsent is a member's consent to a recording.
type RecordingConsent struct {
	RecordingID string
	MemberID    string
	AccountID   string // "" for a guest
	NameEnc     []byte
	At          time.Time
}

func fromNull(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMilli(n.Int64).UTC()
}

// CreateRecording stores a recording that starts, with its consents.
func (db *DB) CreateRecording(ctx context.Context, r Recording, consents []RecordingConsent) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO recordings (id, consult_id, requested_by, started_at, updated_at, state) VALUES (?, ?, ?, ?, ?, ?)`),
			r.ID, r.ConsultID, r.RequestedBy, r.StartedAt.UnixMilli(), r.StartedAt.UnixMilli(), RecordingRunning); err != nil {
			return fmt.Errorf("insert recording: %w", err)
		}
		for _, c := range consents {
			if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO recording_consents (recording_id, member_id, account_id, name_enc, consented_at) VALUES (?, ?, ?, ?, ?)`),
				r.ID, c.MemberID, nullString(c.AccountID), c.NameEnc, c.At.UnixMilli()); err != nil {
				return fmt.Errorf("insert recording consent: %w", err)
			}
		}
		return nil
	})
}

// AddRecordingFile stores a file that a running recording starts.
func (db *DB) AddRecordingFile(ctx context.Context, f RecordingFile) error {
	format := f.Format
	if format == "" {
		format = "webm"
	}
	_, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO recording_files (id, recording_id, member_id, kinds, format, offset_ms) VALUES (?, ?, ?, ?, ?, ?)`),
		f.ID, f.RecordingID, f.MemberID, f.Kinds, format, f.Offset.Milliseconds())
	if err != nil {
		return fmt.Errorf("insert recording file: %w", err)
	}
	return nil
}

// PutRecordingSegment stores a segment of a file, or replaces the one of
// the same Seq (a file's first segment is stored again when it is
// finished), and updates the sizes of the file and its recording, the
// file's duration so far, and the recording's updated_at.
func (db *DB) PutRecordingSegment(ctx context.Context, s RecordingSegment, duration time.Duration, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var recID string
		if err := tx.QueryRowContext(ctx, db.rebind(`SELECT recording_id FROM recording_files WHERE id = ?`), s.FileID).Scan(&recID); err != nil {
			return fmt.Errorf("segment of file %s: %w", s.FileID, err)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO recording_segments (file_id, seq, object, key_enc, size) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (file_id, seq) DO UPDATE SET object = excluded.object, key_enc = excluded.key_enc, size = excluded.size`,
				[]any{s.FileID, s.Seq, s.Object, s.KeyEnc, s.Size}},
			{`UPDATE recording_files SET size = (SELECT COALESCE(SUM(size), 0) FROM recording_segments WHERE file_id = ?), duration_ms = ? WHERE id = ?`,
				[]any{s.FileID, duration.Milliseconds(), s.FileID}},
			{`UPDATE recordings SET size = (SELECT COALESCE(SUM(size), 0) FROM recording_files WHERE recording_id = ?), updated_at = ? WHERE id = ?`,
				[]any{recID, now.UnixMilli(), recID}},
		} {
			if _, err := tx.ExecContext(ctx, db.rebind(q.sql), q.args...); err != nil {
				return fmt.Errorf("store segment %d of file %s: %w", s.Seq, s.FileID, err)
			}
		}
		return nil
	})
}

// FinishRecordingFile marks a file complete: all of it is stored.
func (db *DB) FinishRecordingFile(ctx context.Context, fileID string, duration time.Duration) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE recording_files SET complete = 1, duration_ms = ? WHERE id = ?`), duration.Milliseconds(), fileID)
	if err != nil {
		return fmt.Errorf("finish recording file %s: %w", fileID, err)
	}
	return nil
}

// EndRecording records the end of a running recording: its state
// (RecordingComplete or RecordingPartial), why it stopped and how long it
// ran. It reports false when the recording was not running.
func (db *DB) EndRecording(ctx context.Context, id string, endedAt time.Time, state, reason string, duration time.Duration) (bool, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE recordings SET ended_at = ?, updated_at = ?, state = ?, stop_reason = ?, duration_ms = ? WHERE id = ? AND state = ?`),
		endedAt.UnixMilli(), endedAt.UnixMilli(), state, reason, duration.Milliseconds(), id, RecordingRunning)
	if err != nil {
		return false, fmt.Errorf("end recording %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

const recordingColumns = `id, consult_id, requested_by, started_at, updated_at, ended_at, state, stop_reason, size, duration_ms, expired_at, deleted_at`

func scanRecording(scan func(...any) error) (Recording, error) {
	var r Recording
	var started, updated, dur int64
	var ended, expired, deleted sql.NullInt64
	if err := scan(&r.ID, &r.ConsultID, &r.RequestedBy, &started, &updated, &ended, &r.State, &r.StopReason, &r.Size, &dur, &expired, &deleted); err != nil {
		return Recording{}, err
	}
	r.StartedAt, r.UpdatedAt = time.UnixMilli(started).UTC(), time.UnixMilli(updated).UTC()
	r.Duration = time.Duration(dur) * time.Millisecond
	r.EndedAt, r.ExpiredAt, r.DeletedAt = fromNull(ended), fromNull(expired), fromNull(deleted)
	return r, nil
}

func (db *DB) recordings(ctx context.Context, what, query string, args ...any) ([]Recording, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT `+recordingColumns+` FROM recordings WHERE `+query), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []Recording
	for rows.Next() {
		r, err := scanRecording(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecordingByID returns a recording of a consult.
func (db *DB) RecordingByID(ctx context.Context, consultID, id string) (Recording, error) {
	r, err := scanRecording(db.sql.QueryRowContext(ctx, db.rebind(`SELECT `+recordingColumns+` FROM recordings WHERE id = ? AND consult_id = ?`), id, consultID).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Recording{}, ErrNotFound
	}
	if err != nil {
		return Recording{}, fmt.Errorf("read recording: %w", err)
	}
	return r, nil
}

// RecordingsByConsult returns a consult's recordings, oldest first,
// deleted ones included.
func (db *DB) RecordingsByConsult(ctx context.Context, consultID string) ([]Recording, error) {
	return db.recordings(ctx, "recordings of consult", `consult_id = ? ORDER BY started_at, id`, consultID)
}

// RecordingFiles returns a recording's files, by start.
func (db *DB) RecordingFiles(ctx context.Context, recordingID string) ([]RecordingFile, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT id, recording_id, member_id, kinds, format, offset_ms, duration_ms, size, complete FROM recording_files WHERE recording_id = ? ORDER BY offset_ms, id`), recordingID)
	if err != nil {
		return nil, fmt.Errorf("recording files: %w", err)
	}
	defer rows.Close()
	var out []RecordingFile
	for rows.Next() {
		var f RecordingFile
		var off, dur int64
		var complete int
		if err := rows.Scan(&f.ID, &f.RecordingID, &f.MemberID, &f.Kinds, &f.Format, &off, &dur, &f.Size, &complete); err != nil {
			return nil, fmt.Errorf("recording files: %w", err)
		}
		f.Offset, f.Duration, f.Complete = time.Duration(off)*time.Millisecond, time.Duration(dur)*time.Millisecond, complete != 0
		out = append(out, f)
	}
	return out, rows.Err()
}

// RecordingConsents returns the consents of a recording.
func (db *DB) RecordingConsents(ctx context.Context, recordingID string) ([]RecordingConsent, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT recording_id, member_id, COALESCE(account_id, ''), name_enc, consented_at FROM recording_consents WHERE recording_id = ? ORDER BY consented_at, member_id`), recordingID)
	if err != nil {
		return nil, fmt.Errorf("recording consents: %w", err)
	}
	defer rows.Close()
	var out []RecordingConsent
	for rows.Next() {
		var c RecordingConsent
		var at int64
		if err := rows.Scan(&c.RecordingID, &c.MemberID, &c.AccountID, &c.NameEnc, &at); err != nil {
			return nil, fmt.Errorf("recording consents: %w", err)
		}
		c.At = time.UnixMilli(at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// RecordingSegments returns a file's segments in order.
func (db *DB) RecordingSegments(ctx context.Context, fileID string) ([]RecordingSegment, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT file_id, seq, object, key_enc, size FROM recording_segments WHERE file_id = ? ORDER BY seq`), fileID)
	if err != nil {
		return nil, fmt.Errorf("recording segments: %w", err)
	}
	defer rows.Close()
	var out []RecordingSegment
	for rows.Next() {
		var s RecordingSegment
		if err := rows.Scan(&s.FileID, &s.Seq, &s.Object, &s.KeyEnc, &s.Size); err != nil {
			return nil, fmt.Errorf("recording segments: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
