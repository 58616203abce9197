// Package store owns persistence: opening the database, applying versioned
// schema migrations at start, and the SQL behind the small interfaces that
// other packages declare for what they keep.
//
// SQLite (modernc.org/sqlite, pure Go, WAL mode, foreign keys on, busy
// timeout) is the embedded default; PostgreSQL (pgx's database/sql driver)
// serves installations of several machines. Queries are written once with
// '?' placeholders and rebound per dialect, migrations live in one
// directory per dialect with the same numbers and names, and the behaviour
// is pinned by the shared suites in store/storetest, which run against
// both. Every read-then-write that several processes may do at once is
// either one statement or guarded by a lock that both dialects honour:
// SQLite's write lock taken at BEGIN, and on PostgreSQL a row, table or
// advisory lock named where it is taken.
package store
