package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/signaling/redisbus"
	"github.com/openconsult/openconsult/site"
	"github.com/openconsult/openconsult/site/redislimit"
	"github.com/openconsult/openconsult/store"
)

// redisBusPrefix starts every key and channel of the replicas' bus.
const redisBusPrefix = "openconsult:live:"

// busKeyPurpose derives the key that seals the replicas' messages on
// Redis from the master key (keyring.MasterKey.DeriveKey).
const busKeyPurpose = "redis bus v1"

// liveConsults is what the server needs from the live rooms: a Hub on one
// server, a Cluster when several replicas share PostgreSQL and Redis.
type liveConsults interface {
	site.Signaling
	site.Rooms
	site.Lobbies
	auth.LiveConnections
	Run(ctx context.Context)
}

// newLiveConsults returns the rooms of a single server, or, on PostgreSQL
// with -redis, this replica's share of the rooms of every replica. Their
// messages on Redis are sealed with a key derived from the master key,
// which every replica shares.
func newLiveConsults(s *settings, db *store.DB, deps signaling.RoomDeps, master keyring.MasterKey, reg prometheus.Registerer, log *slog.Logger) (liveConsults, func() error, error) {
	if s.redis == "" || db.Dialect() != "postgres" {
		if s.redis != "" {
			log.Info("live consults stay in this process: several replicas need PostgreSQL as well as -redis")
		}
		// Admissions outlive the process, so that members come back
		// without the lobby after a restart.
		deps.Admissions = serverAdmissions{db}
		return signaling.NewHub(deps), nil, nil
	}
	opt, err := redislimit.Options(s.redis, s.getenv("SIGNAL_REDIS_PASSWORD"))
	if err != nil {
		return nil, nil, fmt.Errorf("-redis: %w", err)
	}
	busKey, err := master.DeriveKey(busKeyPurpose, nil)
	if err != nil {
		return nil, nil, err
	}
	defer clear(busKey[:])
	cfg := redisbus.Config{Prefix: redisBusPrefix, Key: busKey[:], Log: log, Metrics: reg}
	if prev, ok, err := s.previous.load(); err != nil {
		return nil, nil, err
	} else if ok {
		if prev.Fingerprint() == master.Fingerprint() {
			return nil, nil, errors.New("the previous master key is the current one: drop -previous-key-file or -previous-master-key")
		}
		prevKey, err := prev.DeriveKey(busKeyPurpose, nil)
		if err != nil {
			return nil, nil, err
		}
		defer clear(prevKey[:])
		cfg.PreviousKey = prevKey[:]
		log.Info("master key rotation: messages between replicas are sealed under the previous master key as well", "previous", prev.Fingerprint())
	}
	host, _ := os.Hostname()
	replica := strings.ToLower(host + "-" + rand.Text()[:8])
	client := redis.NewClient(opt)
	cfg.Replica = replica
	bus, err := redisbus.New(client, cfg)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	c := signaling.NewCluster(deps, signaling.ClusterConfig{Replica: replica, Leases: leaseStore{db},
		Bus: bus, Log: log})
	log.Info("live consults shared with the other replicas", "replica", replica)
	return c, client.Close, nil
}

// leaseStore adapts the store's leases to what signaling asks of them.
type leaseStore struct{ *store.DB }

func lease(l store.Lease) signaling.Lease {
	return signaling.Lease{Owner: l.Owner, Epoch: l.Epoch, Live: l.Live}
}

func (s leaseStore) AcquireLease(ctx context.Context, consultID, replica string, ttl time.Duration) (signaling.Lease, error) {
	l, err := s.DB.AcquireLease(ctx, consultID, replica, ttl)
	return lease(l), err
}

func (s leaseStore) LeaseOf(ctx context.Context, consultID string) (signaling.Lease, error) {
	l, err := s.DB.LeaseOf(ctx, consultID)
	return lease(l), err
}

// serverAdmissions keeps a single server's admissions in its database.
type serverAdmissions struct{ db *store.DB }

func (a serverAdmissions) Remember(ctx context.Context, consultID, memberID string) error {
	return a.db.RememberAdmission(ctx, consultID, memberID)
}

func (a serverAdmissions) RememberAll(ctx context.Context, consultID string, memberIDs []string) error {
	return a.db.RememberAdmissions(ctx, consultID, memberIDs)
}

func (a serverAdmissions) Forget(ctx context.Context, consultID, memberID string) error {
	return a.db.ForgetAdmission(ctx, consultID, memberID)
}

func (a serverAdmissions) Admitted(ctx context.Context, consultID, memberID string, maxAbsence time.Duration) (bool, error) {
	return a.db.MemberAdmitted(ctx, consultID, memberID, maxAbsence)
}

// auditSigner loads the audit signing key. SQLite serves one machine, so
// the key is created at first start; on PostgreSQL several replicas share
// one log, which needs one key, so the operator creates it once
// (signal audit keygen) and gives every replica the same file.
func auditSigner(s *settings, db *store.DB, origin string) (*audit.Signer, error) {
	if db.Dialect() != "postgres" {
		return audit.LoadOrCreateSigner(s.auditKeyFile, origin)
	}
	signer, err := audit.LoadSigner(s.auditKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: on PostgreSQL every replica signs one audit log with one key, which is never created at start; create it once with `signal audit keygen -audit-key-file FILE` and give each replica that file", err)
	}
	return signer, err
}

// auditKeygen writes a new audit signing key to -audit-key-file, which
// must not exist.
func auditKeygen(s *settings, stdout io.Writer) error {
	origin := "openconsult/audit"
	if s.publicURL.Value != nil {
		origin = s.publicURL.Value.Hostname() + "/audit"
	}
	skey, vkey, err := audit.GenerateSigningKey(origin)
	if err != nil {
		return err
	}
	if err := audit.SaveSigningKey(s.auditKeyFile, skey); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit signing key written to %s\nverifier key (give it to auditors): %s\n", s.auditKeyFile, vkey)
	return nil
}
