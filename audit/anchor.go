package audit

import (
	"context"
	"errors"
	"fmt"
)

// ErrContradicted reports a log that does not extend the newest checkpoint
// kept outside the database: entries were removed from its end, or it was
// rewritten. No checkpoint is signed over it.
var ErrContradicted = errors.New("audit log contradicts its external checkpoint")

// Start checks the stored log against the newest checkpoint of the
// checkpoint file and issues a checkpoint when the log grew since the last
// one, so that a process that runs briefly leaves one behind. A log
// shorter than that checkpoint, or one whose tree differs at its size,
// raises the alarm (Alarm), is logged at error, and gets no checkpoint.
// An error means the check could not run.
func (l *Log) Start(ctx context.Context) error {
	l.treeMu.Lock()
	defer l.treeMu.Unlock()
	if l.file != nil && l.signer != nil {
		exts, err := ReadCheckpointFile(l.file.Path(), l.signer.VerifierKey())
		if err != nil {
			return fmt.Errorf("audit start: %w", err)
		}
		for _, e := range exts {
			// Every record but the last claims more than the newest valid
			// one and does not verify.
			cp, err := OpenCheckpoint(e.Note, l.signer.VerifierKey())
			if err != nil {
				l.raise(fmt.Errorf("%w: %s holds a checkpoint that does not verify with this log's key (%v)", ErrContradicted, e.Source, err))
				continue
			}
			l.anchor, l.anchorFrom = &cp, e.Source
		}
	}
	if err := l.catchUp(ctx); err != nil {
		// A broken chain is Verify's to name; the checkpoint loop keeps
		// reporting it.
		l.logger.Error("audit: the stored log does not verify; run audit verify", "err", err)
		return nil
	}
	l.checkAnchor()
	if err := l.Alarm(); err != nil {
		return nil
	}
	if _, err := l.checkpointIfGrownLocked(ctx); err != nil {
		l.logger.Error("audit: checkpoint at start not issued", "err", err)
	}
	return nil
}

// Shutdown issues a last checkpoint when the log grew since the last one.
func (l *Log) Shutdown(ctx context.Context) error {
	_, err := l.CheckpointIfGrown(ctx)
	return err
}

// Alarm returns why the log contradicts its external checkpoint, or nil.
// Once raised it stays raised for the life of the process.
func (l *Log) Alarm() error {
	l.alarmMu.Lock()
	defer l.alarmMu.Unlock()
	return l.alarm
}

// raise records the first contradiction and logs it at error.
func (l *Log) raise(err error) {
	l.alarmMu.Lock()
	first := l.alarm == nil
	if first {
		l.alarm = err
	}
	l.alarmMu.Unlock()
	if first {
		l.logger.Error("audit: ALARM: the audit log contradicts its external checkpoint; no checkpoint is signed until it is restored", "err", err)
	}
}

// checkAnchor raises the alarm when the tree is shorter than the external
// checkpoint. The caller holds treeMu and has caught up.
func (l *Log) checkAnchor() {
	if a := l.anchor; a != nil && l.tree.size() < a.Size {
		l.raise(fmt.Errorf("%w: the log has %d entries but the checkpoint in %s covers %d: entries %d to %d were removed",
			ErrContradicted, l.tree.size(), l.anchorFrom, a.Size, l.tree.size()+1, a.Size))
	}
}
