//! Salesforce client. OWNER: the client helper.
