package main

import (
	"context"

	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/objstore"
)

// objectStore opens the backend -object-store names, encrypting with the
// keyring's data keys.
func objectStore(_ context.Context, s *settings, sealer objstore.Sealer, _ *obs.Health) (*objstore.Store, error) {
	b, err := objstore.NewFS(s.objectDir)
	if err != nil {
		return nil, err
	}
	return objstore.New(b, sealer), nil
}

func documentLimits(s *settings) consult.DocumentLimits {
	return consult.DocumentLimits{Files: s.documentMaxFiles, Bytes: int64(s.documentMaxMiB) << 20, UploadsPerMinute: s.documentUploadsPerMin}
}
