//! State store. OWNER: the foundation helper.
