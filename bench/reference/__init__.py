"""The bare references `make bench` measures Herald against, on the same servers in the same run."""

TABLE_SQL = "CREATE TABLE IF NOT EXISTS bench_reference_item (id uuid PRIMARY KEY, payload jsonb NOT NULL, created_at timestamptz NOT NULL)"
