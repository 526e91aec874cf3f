//! 18-character Salesforce ids: key prefix, counter, case-safe checksum suffix (reference §10).
//! OWNER: the data-layer helper.
