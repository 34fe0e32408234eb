-- Fails if the audit trail holds rows of records whose keys are not UUIDs.
ALTER TABLE audit_log ALTER COLUMN row_id TYPE UUID USING row_id::uuid;
