package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// TableCopy is what Copy moved of one table.
type TableCopy struct {
	Table string
	Rows  int64
}

// A batch of one INSERT is bounded by its placeholders (PostgreSQL allows
// 65535, SQLite 32766) and its bytes, since rows of documents are large.
const (
	copyBatchParams = 30000
	copyBatchBytes  = 16 << 20
)

// Copy copies every row of every table of src into dst, as an operator
// moves an installation from SQLite to PostgreSQL. Both must be migrated to
// the same schema version; dst must hold no rows. Rows keep their ids and
// bytes exactly: sealed columns are bound to their table, column and row,
// and audit entries to their hashes. Tables go in foreign-key order, in
// batches, inside one transaction on dst, so a failed copy leaves dst
// empty. Afterwards each table is read back on both sides and compared by
// row count and a digest of every value; progress (may be nil) hears of
// each table copied.
func Copy(ctx context.Context, src, dst *DB, progress func(TableCopy)) ([]TableCopy, error) {
	tables, err := copyPlan(ctx, src, dst)
	if err != nil {
		return nil, err
	}
	read, endRead, err := src.bulkReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer endRead()
	var done []TableCopy
	err = dst.tx(ctx, func(tx *sql.Tx) error {
		if err := dst.liftTimeouts(ctx, tx); err != nil {
			return err
		}
		for _, t := range tables {
			n, err := copyTable(ctx, read, dst, tx, t)
			if err != nil {
				return fmt.Errorf("copy %s: %w", t, err)
			}
			done = append(done, TableCopy{Table: t, Rows: n})
			if progress != nil {
				progress(done[len(done)-1])
			}
		}
		return dst.resetIdentities(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	readBack, endReadBack, err := dst.bulkReader(ctx)
	if err != nil {
		return done, fmt.Errorf("target: %w", err)
	}
	defer endReadBack()
	for _, t := range done {
		if err := compareTable(ctx, read, readBack, t); err != nil {
			return done, err
		}
	}
	return done, nil
}

// querier reads from a database or a transaction.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// bulkReader returns what reads whole tables for a copy, and its end. On
// PostgreSQL that is one read-only snapshot without the statement timeout,
// which is meant for requests, not for reading a table of documents.
func (db *DB) bulkReader(ctx context.Context) (querier, func(), error) {
	if db.dialect != "postgres" {
		return db.sql, func() {}, nil
	}
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("begin read: %w", err)
	}
	if err := db.liftTimeouts(ctx, tx); err != nil {
		_ = tx.Rollback()
		return nil, nil, err
	}
	return tx, func() { _ = tx.Rollback() }, nil
}

// liftTimeouts lets a PostgreSQL transaction of a copy run as long as it
// needs; the copy's context bounds it instead.
func (db *DB) liftTimeouts(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != "postgres" {
		return nil
	}
	for _, q := range []string{`SET LOCAL statement_timeout = 0`, `SET LOCAL idle_in_transaction_session_timeout = 0`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// copyPlan checks that src and dst have one schema and dst no rows, and
// returns the tables in an order where each comes after those it refers to.
func copyPlan(ctx context.Context, src, dst *DB) ([]string, error) {
	sv, err := src.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dv, err := dst.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if sv != dv {
		return nil, fmt.Errorf("source schema version %d, target %d: migrate both with the same release", sv, dv)
	}
	tables, err := src.tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	theirs, err := dst.tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if !slices.Equal(tables, theirs) {
		return nil, fmt.Errorf("source tables %v differ from target tables %v", tables, theirs)
	}
	for _, t := range tables {
		var n int64
		if err := dst.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quoteIdent(t)).Scan(&n); err != nil {
			return nil, fmt.Errorf("target: count %s: %w", t, err)
		}
		if n > 0 {
			return nil, fmt.Errorf("target is not empty: %s has %d rows; copy only into a freshly created database", t, n)
		}
	}
	refs, err := src.references(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return dependencyOrder(tables, refs)
}

// dependencyOrder sorts tables so that each follows the tables it refers
// to, by name among equals.
func dependencyOrder(tables []string, refs map[string][]string) ([]string, error) {
	var order []string
	placed := map[string]bool{}
	for len(order) < len(tables) {
		progress := false
		for _, t := range tables {
			if placed[t] {
				continue
			}
			ready := true
			for _, r := range refs[t] {
				if r != t && !placed[r] {
					ready = false
				}
			}
			if ready {
				order, placed[t], progress = append(order, t), true, true
			}
		}
		if !progress {
			return nil, fmt.Errorf("tables refer to each other in a cycle: %v", slices.DeleteFunc(slices.Clone(tables), func(t string) bool { return placed[t] }))
		}
	}
	return order, nil
}

// tables lists the data tables, by name; schema_migrations is written by
// Migrate, not copied.
func (db *DB) tables(ctx context.Context) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if db.dialect == "postgres" {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	names, err := queryStrings(ctx, db.sql, q)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "schema_migrations" })
	slices.Sort(names)
	return names, nil
}

// references maps each table to the tables its foreign keys name.
func (db *DB) references(ctx context.Context) (map[string][]string, error) {
	q := `SELECT m.name, f."table" FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`
	if db.dialect == "postgres" {
		q = `SELECT c.relname, p.relname FROM pg_constraint k
			JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
			WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace`
	}
	rows, err := db.sql.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	defer rows.Close()
	refs := map[string][]string{}
	for rows.Next() {
		var from, to string
		if err := rows.Scan(&from, &to); err != nil {
			return nil, fmt.Errorf("read foreign keys: %w", err)
		}
		refs[from] = append(refs[from], to)
	}
	return refs, rows.Err()
}

func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// columnKinds names a table's columns in order with, for each, whether it
// holds bytes (BLOB, BYTEA), text or something else.
func columnKinds(ctx context.Context, q querier, table string) ([]string, map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT * FROM `+quoteIdent(table)+` WHERE 1 = 0`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, nil, err
	}
	var names []string
	kinds := map[string]string{}
	for _, ct := range types {
		names = append(names, ct.Name())
		switch t := strings.ToUpper(ct.DatabaseTypeName()); {
		case t == "BLOB" || t == "BYTEA":
			kinds[ct.Name()] = "bytes"
		case t == "TEXT" || strings.Contains(t, "CHAR"):
			kinds[ct.Name()] = "text"
		default:
			kinds[ct.Name()] = "other"
		}
	}
	return names, kinds, rows.Err()
}

// copyTable streams one table from src into tx on dst in batches and
// returns how many rows it wrote.
func copyTable(ctx context.Context, src querier, dst *DB, tx *sql.Tx, table string) (int64, error) {
	cols, _, err := columnKinds(ctx, src, table)
	if err != nil {
		return 0, fmt.Errorf("read source columns: %w", err)
	}
	dstCols, kinds, err := columnKinds(ctx, tx, table)
	if err != nil {
		return 0, fmt.Errorf("read target columns: %w", err)
	}
	slices.Sort(dstCols)
	if sorted := slices.Sorted(slices.Values(cols)); !slices.Equal(sorted, dstCols) {
		return 0, fmt.Errorf("source columns %v differ from target columns %v", sorted, dstCols)
	}
	list := quoteIdents(cols)
	rows, err := src.QueryContext(ctx, `SELECT `+list+` FROM `+quoteIdent(table))
	if err != nil {
		return 0, fmt.Errorf("read source: %w", err)
	}
	defer rows.Close()
	per := max(1, min(500, copyBatchParams/len(cols)))
	var batch []any
	var n, size int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		rowsIn := len(batch) / len(cols)
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
		q := `INSERT INTO ` + quoteIdent(table) + ` (` + list + `) VALUES ` + strings.TrimSuffix(strings.Repeat(one+", ", rowsIn), ", ")
		if _, err := tx.ExecContext(ctx, dst.rebind(q), batch...); err != nil {
			return fmt.Errorf("write rows %d-%d: %w", n+1, n+int64(rowsIn), err)
		}
		n += int64(rowsIn)
		batch, size = batch[:0], 0
		return nil
	}
	for rows.Next() {
		vals, err := scanValues(rows, len(cols))
		if err != nil {
			return n, fmt.Errorf("read source: %w", err)
		}
		for i, v := range vals {
			v = convertFor(kinds[cols[i]], v)
			if b, ok := v.([]byte); ok {
				size += int64(len(b))
			} else if s, ok := v.(string); ok {
				size += int64(len(s))
			}
			batch = append(batch, v)
		}
		if len(batch) >= per*len(cols) || size >= copyBatchBytes {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read source: %w", err)
	}
	return n, flush()
}

func scanValues(rows *sql.Rows, n int) ([]any, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	return vals, nil
}

// convertFor gives a value the Go type the target column takes: SQLite may
// hand back text for a BLOB column or bytes for a TEXT one.
func convertFor(kind string, v any) any {
	switch x := v.(type) {
	case string:
		if kind == "bytes" {
			return []byte(x)
		}
	case []byte:
		if kind == "text" {
			return string(x)
		}
		// A copy, since the driver may reuse the buffer, and never nil: an
		// empty BLOB is a value, which a nil slice would write as NULL.
		return append([]byte{}, x...)
	}
	return v
}

// resetIdentities moves each PostgreSQL identity column's sequence past
// the ids copied into it, so the next row numbered by the database does not
// collide with a copied one.
func (db *DB) resetIdentities(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != "postgres" {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES'`)
	if err != nil {
		return fmt.Errorf("list identity columns: %w", err)
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.column); err != nil {
			rows.Close()
			return fmt.Errorf("list identity columns: %w", err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list identity columns: %w", err)
	}
	for _, c := range cols {
		q := `SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT MAX(` + quoteIdent(c.column) + `) FROM ` + quoteIdent(c.table) + `), 0) + 1, false)`
		if _, err := tx.ExecContext(ctx, q, quoteIdent(c.table), c.column); err != nil {
			return fmt.Errorf("advance the ids of %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}

// compareTable reads a table on both sides and compares row counts and an
// order-independent digest of every value.
func compareTable(ctx context.Context, src, dst querier, t TableCopy) error {
	cols, _, err := columnKinds(ctx, src, t.Table)
	if err != nil {
		return fmt.Errorf("verify %s: %w", t.Table, err)
	}
	sn, sd, err := tableDigest(ctx, src, t.Table, cols)
	if err != nil {
		return fmt.Errorf("verify %s on the source: %w", t.Table, err)
	}
	dn, dd, err := tableDigest(ctx, dst, t.Table, cols)
	if err != nil {
		return fmt.Errorf("verify %s on the target: %w", t.Table, err)
	}
	if sn != t.Rows || dn != t.Rows {
		return fmt.Errorf("verify %s: %d rows copied, source has %d, target %d (was the source written to during the copy?)", t.Table, t.Rows, sn, dn)
	}
	if sd != dd {
		return fmt.Errorf("verify %s: the rows on the target differ from the source", t.Table)
	}
	return nil
}

// tableDigest counts a table's rows and XORs the SHA-256 of each row's
// values: rows are distinct (each table has a primary key), so equal
// digests mean equal contents whatever order the rows come in.
func tableDigest(ctx context.Context, q querier, table string, cols []string) (int64, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	rows, err := q.QueryContext(ctx, `SELECT `+quoteIdents(cols)+` FROM `+quoteIdent(table))
	if err != nil {
		return 0, sum, err
	}
	defer rows.Close()
	var n int64
	var buf []byte
	for rows.Next() {
		vals, err := scanValues(rows, len(cols))
		if err != nil {
			return n, sum, err
		}
		buf = buf[:0]
		for _, v := range vals {
			buf = appendCanonical(buf, v)
		}
		h := sha256.Sum256(buf)
		for i := range sum {
			sum[i] ^= h[i]
		}
		n++
	}
	return n, sum, rows.Err()
}

// appendCanonical writes a value so that the same value read from either
// dialect gives the same bytes: integers by decimal, text and bytes alike
// by length and content, NULL apart from both.
func appendCanonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case int64:
		return strconv.AppendInt(append(b, 'i'), x, 10)
	case int32:
		return strconv.AppendInt(append(b, 'i'), int64(x), 10)
	case int:
		return strconv.AppendInt(append(b, 'i'), int64(x), 10)
	case bool:
		return strconv.AppendInt(append(b, 'i'), int64(boolInt(x)), 10)
	case string:
		return append(append(strconv.AppendInt(append(b, 'v'), int64(len(x)), 10), ':'), x...)
	case []byte:
		return append(append(strconv.AppendInt(append(b, 'v'), int64(len(x)), 10), ':'), x...)
	default:
		return fmt.Appendf(append(b, 'x'), "%T:%v;", v, v)
	}
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteIdents(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quoteIdent(s)
	}
	return strings.Join(q, ", ")
}
