//! Outbound Messaging delivery. OWNER: the server helper.
