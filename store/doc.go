// Package store owns persistence: opening the database, applying versioned
// schema migrations at start, and the SQL behind the small interfaces that
// other packages declare for what they keep.
//
// SQLite (modernc.org/sqlite, pure Go, WAL mode, foreign keys on, busy
// timeout) is the embedded default. Queries are written once with '?'
// placeholders and rebound per dialect, migrations live in one directory per
// dialect, and the behaviour is pinned by the shared suite in
// store/storetest, so that a PostgreSQL dialect only adds a driver, its
// migrations directory and a run of that suite.
package store
