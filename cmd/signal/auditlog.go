package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/store"
)

// auditCheckName is the /readyz check that fails while the audit log
// contradicts its external checkpoint.
const auditCheckName = "audit-external-checkpoint"

// auditSendTimeout bounds one delivery of a checkpoint to syslog or a
// witness; auditRetry is the first pause after a failed one.
const (
	auditSendTimeout = 10 * time.Second
	auditRetry       = 5 * time.Second
)

// auditLog is the started audit log with what the server runs and stops
// for it.
type auditLog struct {
	*audit.Log
	file       *audit.CheckpointFile
	forwarders []*audit.Forwarder
}

// openAuditLog opens the checkpoint file and the forwarders, checks the
// stored log against the newest external checkpoint (Start), and reports
// a contradiction through readiness and a metric as well as the log.
func openAuditLog(ctx context.Context, s *settings, db *store.DB, signer *audit.Signer, log *slog.Logger,
	reg prometheus.Registerer, health *obs.Health) (*auditLog, error) {
	file, err := audit.OpenCheckpointFile(s.auditCheckpointDir)
	if err != nil {
		return nil, err
	}
	a := &auditLog{file: file}
	opts := []audit.Option{audit.WithLogger(log), audit.WithCheckpointFile(file)}
	if s.auditSyslog != "" {
		send, err := audit.SyslogSender(s.auditSyslog)
		if err != nil {
			file.Close()
			return nil, err
		}
		a.forwarders = append(a.forwarders, audit.NewForwarder("syslog", send, auditSendTimeout, auditRetry, log))
	}
	if s.auditWitness != "" {
		client := &http.Client{Timeout: auditSendTimeout}
		send := audit.WitnessSender(s.auditWitness, client)
		a.forwarders = append(a.forwarders, audit.NewForwarder("witness", send, auditSendTimeout, auditRetry, log))
	}
	for _, f := range a.forwarders {
		opts = append(opts, audit.WithPublisher(f))
	}
	a.Log = audit.New(db, signer, time.Now, opts...)
	if err := a.Start(ctx); err != nil {
		file.Close()
		return nil, err
	}
	health.AddCheck(auditCheckName, func(context.Context) error { return a.Alarm() })
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "audit_log_contradicts_checkpoint",
		Help: "1 while the audit log is shorter than, or differs from, the newest checkpoint kept outside the database; no checkpoint is signed meanwhile.",
	}, func() float64 {
		if a.Alarm() != nil {
			return 1
		}
		return 0
	}))
	return a, nil
}

// loops are the goroutines the server runs for the audit log.
func (a *auditLog) loops(every time.Duration) []func(context.Context) {
	out := []func(context.Context){func(ctx context.Context) { a.Run(ctx, every) }}
	for _, f := range a.forwarders {
		out = append(out, f.Run)
	}
	return out
}

// shutdown issues the checkpoint of a graceful stop and sends it to
// syslog and the witness within ctx.
func (a *auditLog) shutdown(ctx context.Context, log *slog.Logger) {
	if err := a.Shutdown(ctx); err != nil {
		log.Error("audit: checkpoint at shutdown not issued", "err", err)
	}
	for _, f := range a.forwarders {
		f.Flush(ctx)
	}
}

// verifyExportFile checks an export offline against the checkpoints of
// the given files, in the order they were written.
func verifyExportFile(path, pubkey string, checkpointFiles []string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var held []audit.ExternalCheckpoint
	for _, c := range checkpointFiles {
		recs, err := audit.ReadCheckpoints(c)
		if err != nil {
			return err
		}
		held = append(held, recs...)
	}
	rep, err := audit.VerifyExport(f, pubkey, held...)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep)
	if !rep.OK {
		return errors.New("export failed verification")
	}
	return nil
}

// verifyLog checks the stored log against its checkpoints, in the
// database and outside it.
func verifyLog(ctx context.Context, db *store.DB, vkey, dir string, checkpointFiles []string, stdout io.Writer) error {
	exts, notes, err := externalCheckpoints(dir, checkpointFiles, vkey)
	if err != nil {
		return err
	}
	rep, err := audit.Verify(ctx, db, vkey, exts...)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(stdout, "note: "+n)
	}
	fmt.Fprintln(stdout, rep)
	if !rep.OK {
		return fmt.Errorf("audit log failed verification at entry %d", rep.FirstBad)
	}
	return nil
}

// openToolAuditLog opens the audit log for a subcommand that signs (an
// export): its checkpoint goes to the checkpoint file like the server's,
// and it is refused over a log that contradicts the file.
func openToolAuditLog(ctx context.Context, s *settings, db *store.DB, signer *audit.Signer, stderr io.Writer) (*audit.Log, func(), error) {
	log, err := obs.NewLogger(stderr, s.logLevel.Value, s.logFormat.Value)
	if err != nil {
		return nil, nil, err
	}
	file, err := audit.OpenCheckpointFile(s.auditCheckpointDir)
	if err != nil {
		return nil, nil, err
	}
	closeFile := func() { file.Close() }
	lg := audit.New(db, signer, time.Now, audit.WithCheckpointFile(file), audit.WithLogger(log))
	if err := lg.Start(ctx); err != nil {
		closeFile()
		return nil, nil, err
	}
	if err := lg.Alarm(); err != nil {
		closeFile()
		return nil, nil, err
	}
	return lg, closeFile, nil
}

// externalCheckpoints reads the newest checkpoint of the checkpoint
// directory, if there is one, and of each file given with -checkpoint.
func externalCheckpoints(dir string, files []string, vkey string) ([]audit.ExternalCheckpoint, []string, error) {
	var exts []audit.ExternalCheckpoint
	var notes []string
	local := filepath.Join(dir, audit.CheckpointFileName)
	got, err := audit.ReadCheckpointFile(local, vkey)
	switch {
	case errors.Is(err, os.ErrNotExist):
		notes = append(notes, fmt.Sprintf("no checkpoint file at %s", local))
	case err != nil:
		return nil, nil, err
	default:
		exts = append(exts, got...)
	}
	for _, f := range files {
		got, err := audit.ReadCheckpointFile(f, vkey)
		if err != nil {
			return nil, nil, err
		}
		if len(got) == 0 {
			return nil, nil, fmt.Errorf("-checkpoint %s: no checkpoint in it", f)
		}
		exts = append(exts, got...)
	}
	if len(exts) == 0 {
		notes = append(notes, "no checkpoint kept outside the database was found: removed newest entries cannot be detected")
	}
	return exts, notes, nil
}

// checkWitnessURL accepts an https URL, or http to a loopback host (a
// witness beside the server).
func checkWitnessURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", v)
	}
	host := u.Hostname()
	ip, _ := netip.ParseAddr(host)
	loopback := host == "localhost" || ip.IsLoopback()
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return fmt.Errorf("%q must use https:// (http:// only to a loopback address)", v)
	}
	return nil
}
