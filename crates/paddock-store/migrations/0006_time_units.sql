-- Every time column says its unit: boxes, activations and egress keep Unix
-- milliseconds, the API tokens Unix seconds (JWT `exp` and the token TTLs
-- people write are seconds). The values are unchanged; only the names are.
ALTER TABLE boxes RENAME COLUMN created_at TO created_at_ms;
ALTER TABLE boxes RENAME COLUMN updated_at TO updated_at_ms;
ALTER TABLE activations RENAME COLUMN expires_at TO expires_at_ms;
ALTER TABLE egress_rules RENAME COLUMN expires_at TO expires_at_ms;
ALTER TABLE egress_rules RENAME COLUMN created_at TO created_at_ms;
ALTER TABLE egress_audit RENAME COLUMN at TO at_ms;
ALTER TABLE egress_shield RENAME COLUMN until TO until_ms;
ALTER TABLE api_tokens RENAME COLUMN created_at TO created_at_secs;
ALTER TABLE api_tokens RENAME COLUMN expires_at TO expires_at_secs;
ALTER TABLE api_tokens RENAME COLUMN revoked_at TO revoked_at_secs;
ALTER TABLE api_tokens RENAME COLUMN mcp_seen_at TO mcp_seen_at_secs;
