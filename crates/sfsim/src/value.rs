//! Typed field values. OWNER: the data-layer helper.
