-- Migration 6: what each host trusts (root and timestamp versions, the timestamp's expiry), as JSON.
ALTER TABLE hosts ADD COLUMN trust TEXT;
