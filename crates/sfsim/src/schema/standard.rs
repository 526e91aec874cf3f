//! The standard objects of a new org, with the fields orgsync and its tests use.

use std::collections::HashMap;

use super::{FieldDef, FieldType, ObjectDef, Schema};
use crate::ids;

/// The Opportunity stages and their default probabilities, as in a new org.
pub const OPPORTUNITY_STAGES: &[(&str, f64)] = &[
    ("Prospecting", 10.0),
    ("Qualification", 10.0),
    ("Needs Analysis", 20.0),
    ("Value Proposition", 50.0),
    ("Id. Decision Makers", 60.0),
    ("Perception Analysis", 70.0),
    ("Proposal/Price Quote", 75.0),
    ("Negotiation/Review", 90.0),
    ("Closed Won", 100.0),
    ("Closed Lost", 0.0),
];

impl Schema {
    /// Account, Opportunity, User, Contact and Task as in a new org (the fields orgsync, its
    /// tests and jsforce's use).
    pub fn standard() -> Schema {
        use FieldType as T;
        let account = ObjectDef::new(
            "Account",
            "Accounts",
            ids::ACCOUNT_PREFIX,
            vec![
                FieldDef::new("Name", "Account Name", T::String)
                    .required()
                    .id_lookup()
                    .name_field(),
                owner(),
                FieldDef::new("AccountNumber", "Account Number", T::String).length(40),
                FieldDef::new("Description", "Account Description", T::Textarea),
                FieldDef::new("Industry", "Industry", T::Picklist)
                    .length(255)
                    .picklist(&[
                        "Agriculture",
                        "Banking",
                        "Chemicals",
                        "Communications",
                        "Consulting",
                        "Education",
                        "Electronics",
                        "Energy",
                        "Finance",
                        "Healthcare",
                        "Manufacturing",
                        "Media",
                        "Retail",
                        "Technology",
                        "Other",
                    ]),
                FieldDef::new("NumberOfEmployees", "Employees", T::Int).length(8),
                FieldDef::new("AnnualRevenue", "Annual Revenue", T::Currency),
                FieldDef::new("Type", "Account Type", T::Picklist).picklist(&[
                    "Prospect",
                    "Customer - Direct",
                    "Customer - Channel",
                    "Channel Partner / Reseller",
                    "Installation Partner",
                    "Technology Partner",
                    "Other",
                ]),
                FieldDef::new("Phone", "Account Phone", T::Phone),
                FieldDef::new("Fax", "Account Fax", T::Phone),
                FieldDef::new("Website", "Website", T::Url),
                FieldDef::new("Site", "Account Site", T::String).length(80),
                FieldDef::new("BillingStreet", "Billing Street", T::Textarea).length(255),
                FieldDef::new("BillingCity", "Billing City", T::String).length(40),
                FieldDef::new("BillingState", "Billing State/Province", T::String).length(80),
                FieldDef::new("BillingPostalCode", "Billing Zip/Postal Code", T::String).length(20),
                FieldDef::new("BillingCountry", "Billing Country", T::String).length(80),
                FieldDef::new("LastActivityDate", "Last Activity", T::Date).read_only(),
                // Set on the records a merge deleted: the id of the record they were merged into.
                FieldDef::new("MasterRecordId", "Master Record ID", T::Reference)
                    .reference("Account", "MasterRecord")
                    .read_only(),
            ],
        );
        let stages: Vec<&str> = OPPORTUNITY_STAGES.iter().map(|(s, _)| *s).collect();
        let mut is_closed = FieldDef::new("IsClosed", "Closed", T::Boolean).read_only();
        is_closed.nillable = false;
        let mut is_won = FieldDef::new("IsWon", "Won", T::Boolean).read_only();
        is_won.nillable = false;
        let opportunity = ObjectDef::new(
            "Opportunity",
            "Opportunities",
            ids::OPPORTUNITY_PREFIX,
            vec![
                FieldDef::new("AccountId", "Account ID", T::Reference)
                    .reference("Account", "Account")
                    .children("Opportunities"),
                owner(),
                FieldDef::new("Name", "Name", T::String)
                    .length(120)
                    .required()
                    .name_field(),
                FieldDef::new("Description", "Description", T::Textarea),
                FieldDef::new("StageName", "Stage", T::Picklist)
                    .required()
                    .picklist(&stages),
                FieldDef::new("Amount", "Amount", T::Currency),
                FieldDef::new("Probability", "Probability (%)", T::Percent),
                FieldDef::new("CloseDate", "Close Date", T::Date).required(),
                FieldDef::new("Type", "Opportunity Type", T::Picklist).picklist(&[
                    "Existing Customer - Upgrade",
                    "Existing Customer - Replacement",
                    "Existing Customer - Downgrade",
                    "New Customer",
                ]),
                FieldDef::new("NextStep", "Next Step", T::String),
                FieldDef::new("LeadSource", "Lead Source", T::Picklist).picklist(&[
                    "Web",
                    "Phone Inquiry",
                    "Partner Referral",
                    "Purchased List",
                    "Other",
                ]),
                is_closed,
                is_won,
            ],
        );
        let contact = ObjectDef::new(
            "Contact",
            "Contacts",
            ids::CONTACT_PREFIX,
            vec![
                FieldDef::new("AccountId", "Account ID", T::Reference)
                    .reference("Account", "Account")
                    .children("Contacts"),
                owner(),
                FieldDef::new("FirstName", "First Name", T::String).length(40),
                FieldDef::new("LastName", "Last Name", T::String)
                    .length(80)
                    .required(),
                // Compound: FirstName and LastName, set by the server.
                FieldDef::new("Name", "Full Name", T::String)
                    .length(121)
                    .read_only()
                    .name_field(),
                FieldDef::new("Email", "Email", T::Email),
                FieldDef::new("Phone", "Business Phone", T::Phone),
                FieldDef::new("Title", "Title", T::String).length(128),
                FieldDef::new("Description", "Contact Description", T::Textarea),
                FieldDef::new("LastActivityDate", "Last Activity", T::Date).read_only(),
            ],
        );
        let mut task_closed = FieldDef::new("IsClosed", "Closed", T::Boolean).read_only();
        task_closed.nillable = false;
        let task = ObjectDef::new(
            "Task",
            "Tasks",
            ids::TASK_PREFIX,
            vec![
                // Salesforce's WhoId (Contact or Lead) and WhatId (Account, Opportunity, ...)
                // are polymorphic; here each refers to one object.
                FieldDef::new("WhoId", "Name ID", T::Reference)
                    .reference("Contact", "Who")
                    .children("Tasks"),
                FieldDef::new("WhatId", "Related To ID", T::Reference)
                    .reference("Account", "What")
                    .children("Tasks"),
                owner(),
                FieldDef::new("Subject", "Subject", T::String),
                FieldDef::new("ActivityDate", "Due Date Only", T::Date),
                FieldDef::new("Status", "Status", T::Picklist)
                    .picklist(&[
                        "Not Started",
                        "In Progress",
                        "Completed",
                        "Waiting on someone else",
                        "Deferred",
                    ])
                    .defaulted("Not Started"),
                FieldDef::new("Priority", "Priority", T::Picklist)
                    .picklist(&["High", "Normal", "Low"])
                    .defaulted("Normal"),
                FieldDef::new("Description", "Description", T::Textarea),
                task_closed,
            ],
        );
        let user = ObjectDef::new(
            "User",
            "Users",
            ids::USER_PREFIX,
            vec![
                {
                    let mut f = FieldDef::new("Username", "Username", T::String)
                        .length(80)
                        .required()
                        .id_lookup();
                    f.unique = true;
                    f
                },
                FieldDef::new("Name", "Full Name", T::String)
                    .length(121)
                    .required()
                    .name_field(),
                FieldDef::new("Email", "Email", T::Email)
                    .length(128)
                    .required(),
                FieldDef::new("IsActive", "Active", T::Boolean),
            ],
        );
        let mut schema = Schema {
            objects: Vec::new(),
            by_name: HashMap::new(),
        };
        for o in [account, opportunity, user, contact, task] {
            schema
                .by_name
                .insert(o.name.to_ascii_lowercase(), schema.objects.len());
            schema.objects.push(o);
        }
        schema
    }
}

/// `OwnerId`: required, but defaulted to the writing user on create.
pub(super) fn owner() -> FieldDef {
    let mut f =
        FieldDef::new("OwnerId", "Owner ID", FieldType::Reference).reference("User", "Owner");
    f.nillable = false;
    f.defaulted_on_create = true;
    f
}
