package calllog

import (
	"context"
	"fmt"
	"time"
)

// Binding is a pool number held for a web visitor, kept so that a
// restart does not forget which visit a number was shown to.
type Binding struct {
	Pool      string
	Number    string
	VisitorID string
	// VisitJSON is the visit as the pool's owner encodes it; opaque here.
	VisitJSON string
	HeldUntil time.Time
}

// SaveBindings replaces every binding of pool with bs, atomically. Every
// element of bs must belong to pool.
func (s *Store) SaveBindings(pool string, bs []Binding) error {
	for _, b := range bs {
		if b.Pool != pool {
			return fmt.Errorf("calllog: save bindings of pool %q: binding of %s belongs to pool %q", pool, b.Number, b.Pool)
		}
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("calllog: save bindings: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `DELETE FROM bindings WHERE pool = ?`, pool); err != nil {
		return fmt.Errorf("calllog: save bindings: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO bindings (pool, number, visitor_id, visit_json, held_until_ms) VALUES (?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("calllog: save bindings: %w", err)
	}
	defer stmt.Close()
	for _, b := range bs {
		if _, err := stmt.ExecContext(ctx, b.Pool, b.Number, b.VisitorID, b.VisitJSON, b.HeldUntil.UnixMilli()); err != nil {
			return fmt.Errorf("calllog: save binding %s/%s: %w", b.Pool, b.Number, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("calllog: save bindings: %w", err)
	}
	return nil
}

// LoadBindings returns every stored binding, by pool and number. Expired
// ones are included: whether a hold still counts is the pool's decision.
func (s *Store) LoadBindings() ([]Binding, error) {
	rows, err := s.db.Query(`SELECT pool, number, visitor_id, visit_json, held_until_ms FROM bindings ORDER BY pool, number`)
	if err != nil {
		return nil, fmt.Errorf("calllog: load bindings: %w", err)
	}
	defer rows.Close()
	var out []Binding
	for rows.Next() {
		var b Binding
		var ms int64
		if err := rows.Scan(&b.Pool, &b.Number, &b.VisitorID, &b.VisitJSON, &ms); err != nil {
			return nil, fmt.Errorf("calllog: load bindings: %w", err)
		}
		b.HeldUntil = time.UnixMilli(ms).UTC()
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("calllog: load bindings: %w", err)
	}
	return out, nil
}
