package store_test

import (
	"testing"

	"github.com/openconsult/openconsult/store/storetest"
)

func TestSQLiteKeys(t *testing.T) { storetest.RunKeys(t, openSQLite) }
