-- When a token was first presented over MCP: from then on it is the
-- chatbot's, and (by default) decides no egress on any surface.
ALTER TABLE api_tokens ADD COLUMN mcp_seen_at INTEGER;
