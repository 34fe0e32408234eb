-- Records may have integer keys (BIGSERIAL) as well as UUIDs: the audit trail stores any key as text.
ALTER TABLE audit_log ALTER COLUMN row_id TYPE TEXT USING row_id::text;
