package calllog

import (
	"database/sql"
	"fmt"
)

// migrations()[i] brings the schema from version i to i+1. Released entries
// never change: a database records how far it got, and a new version
// appends a step.
func migrations() []string {
	return []string{
		`CREATE TABLE calls (
		call_id         TEXT PRIMARY KEY,
		sip_call_id     TEXT NOT NULL DEFAULT '',
		caller          TEXT NOT NULL DEFAULT '',
		caller_name     TEXT NOT NULL DEFAULT '',
		tracking_number TEXT NOT NULL DEFAULT '',
		source          TEXT NOT NULL DEFAULT '',
		medium          TEXT NOT NULL DEFAULT '',
		campaign        TEXT NOT NULL DEFAULT '',
		keyword         TEXT NOT NULL DEFAULT '',
		pool            TEXT NOT NULL DEFAULT '',
		visitor         TEXT,
		first_call      INTEGER NOT NULL DEFAULT 0,
		flow            TEXT NOT NULL DEFAULT '',
		ivr             TEXT,
		ivr_exit        TEXT NOT NULL DEFAULT '',
		queue           TEXT NOT NULL DEFAULT '',
		agent           TEXT NOT NULL DEFAULT '',
		outcome         TEXT NOT NULL DEFAULT '',
		missed_reason   TEXT NOT NULL DEFAULT '',
		hangup_by       TEXT NOT NULL DEFAULT '',
		started_at      INTEGER NOT NULL,
		answered_at     INTEGER,
		ended_at        INTEGER,
		wait_ms         INTEGER,
		talk_ms         INTEGER,
		duration_ms     INTEGER,
		consent         TEXT NOT NULL DEFAULT '',
		recording_path  TEXT,
		recording_ms    INTEGER
	);
	-- The call list pages newest first by (started_at, call_id).
	CREATE INDEX calls_started ON calls (started_at, call_id);
	-- FirstCall looks up one caller's recent calls on every new call.
	CREATE INDEX calls_caller ON calls (caller, started_at);
	CREATE TABLE bindings (
		pool          TEXT NOT NULL,
		number        TEXT NOT NULL,
		visitor_id    TEXT NOT NULL DEFAULT '',
		visit_json    TEXT NOT NULL DEFAULT '',
		held_until_ms INTEGER NOT NULL,
		PRIMARY KEY (pool, number)
	);`,
		// Each agent rung for a call: the agents report counts offers and
		// misses from these, which the final record alone cannot tell.
		`CREATE TABLE attempts (
		call_id    TEXT NOT NULL,
		agent      TEXT NOT NULL,
		started_at INTEGER,
		ring_ms    INTEGER NOT NULL,
		result     TEXT NOT NULL
	);
	-- The agents report joins a range of calls to their attempts.
	CREATE INDEX attempts_call ON attempts (call_id);
	-- One agent's rings over a period (an agent's day) without a scan.
	CREATE INDEX attempts_agent ON attempts (agent, started_at);`,
		// A tracking number's calls (the call list's filter) without
		// reading every call.
		`CREATE INDEX calls_tracking ON calls (tracking_number, started_at);`,
	}
}

func migrate(db *sql.DB) error {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	var version int
	err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&version)
	switch {
	case err == sql.ErrNoRows:
		if _, err := db.Exec(`INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	case err != nil:
		return fmt.Errorf("schema: %w", err)
	}
	steps := migrations()
	if version > len(steps) {
		return fmt.Errorf("schema version %d is newer than this build knows (%d); refusing to touch it", version, len(steps))
	}
	for v := version; v < len(steps); v++ {
		if err := step(db, v, steps[v]); err != nil {
			return fmt.Errorf("schema migration to version %d: %w", v+1, err)
		}
	}
	return nil
}

// step applies one migration and records it in the same transaction, so
// a crash leaves the database at one version or the next, never between.
func step(db *sql.DB, from int, ddl string) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// Re-read inside the write lock: another process may have migrated
	// since this one looked.
	var cur int
	if err := tx.QueryRow(`SELECT version FROM schema_version`).Scan(&cur); err != nil {
		return err
	}
	if cur != from {
		return nil
	}
	if _, err := tx.Exec(ddl); err != nil {
		return err
	}
	if _, err := tx.Exec(`UPDATE schema_version SET version = ?`, from+1); err != nil {
		return err
	}
	return tx.Commit()
}
