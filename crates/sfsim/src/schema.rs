//! Objects and fields. OWNER: the data-layer helper.
