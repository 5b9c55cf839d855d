"""Pipeline machinery: config resolution, the plan (node ids), the content-addressed store, the node runner, the DAG declarations and artifact readers."""
