package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/objstore/azureblob"
)

// objectStore opens the backend -object-store names, encrypting with the
// keyring's data keys.
func objectStore(ctx context.Context, s *settings, sealer objstore.Sealer, log *slog.Logger) (*objstore.Store, error) {
	var b objstore.Backend
	switch s.objectStore.Value {
	case "azure":
		cfg := azureblob.Config{Container: s.azureContainer, ConnectionString: s.azureConnectionString,
			AccountURL: s.azureAccountURL, AccountKey: s.azureAccountKey, SAS: s.azureSAS}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		a, err := azureblob.Open(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("object store: %w", err)
		}
		log.Info("object store ready", "backend", "azure", "container", s.azureContainer, "auth", cfg.Method())
		b = a
	default:
		f, err := objstore.NewFS(s.objectDir)
		if err != nil {
			return nil, fmt.Errorf("object store: %w", err)
		}
		log.Info("object store ready", "backend", "filesystem", "dir", s.objectDir)
		b = f
	}
	return objstore.New(b, sealer), nil
}

func documentLimits(s *settings) consult.DocumentLimits {
	return consult.DocumentLimits{Files: s.documentMaxFiles, Bytes: int64(s.documentMaxMiB) << 20, UploadsPerMinute: s.documentUploadsPerMin}
}
