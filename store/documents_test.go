package store_test

import (
	"testing"

	"github.com/openconsult/openconsult/store/storetest"
)

func TestSQLiteDocuments(t *testing.T) { storetest.RunDocuments(t, openSQLite) }
