package store_test

import (
	"testing"

	"github.com/openconsult/openconsult/store/storetest"
)

func TestSQLiteDocuments(t *testing.T) { storetest.RunDocuments(t, openSQLite) }

func TestSQLiteRetention(t *testing.T) { storetest.RunRetention(t, openSQLite) }

func TestSQLiteRecordings(t *testing.T) { storetest.RunRecordings(t, openSQLite) }
