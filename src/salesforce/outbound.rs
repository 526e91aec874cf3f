//! Outbound Messaging: reading the SOAP `notifications` message Salesforce POSTs to the push
//! listener, and the envelopes the listener answers with (`Ack`, or a SOAP fault).
//!
//! Pure functions, no I/O: the listener (issue 6) checks the shared secret and the body size,
//! calls [`parse_notifications`], checks `organization_id` against the org it logged in to,
//! stores the record ids in the inbox, and only then answers [`ack_envelope`]. A notification's
//! field values may be stale or partial, so orgsync keeps only the ids and refetches records;
//! the values are parsed anyway (as text) for logs and diagnostics.
//!
//! An Ack is final: Salesforce never resends an acked message. So the parser accepts only a
//! complete message and refuses (the listener then answers a fault, and Salesforce retries)
//! anything it cannot read in full: the document must be well-formed with every element
//! closed, hold exactly one SOAP 1.1 `Envelope` > `Body` > `notifications` in the outbound
//! namespace (names are resolved through their namespaces with quick-xml's `NsReader`, never
//! by prefix), and every id must be valid (key prefix and checksum, see [`super::ids`]), since
//! one bad record id stored in the inbox would make the org refuse the whole batch it is
//! fetched in. A body cut anywhere (inside text, between two notifications, after
//! `</notifications>`) is refused, not acked with the notifications before the cut.
//!
//! Hostile input: a DOCTYPE is refused (no entity tricks), more than 100 notifications is
//! refused (Salesforce never sends more), and nothing here panics on malformed XML.
//! Reference: salesforce-api.md §7.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{NamespaceResolver, QName, ResolveResult};
use quick_xml::reader::NsReader;

use super::ids::{
    self, ACTION_PREFIX, IdError, NOTIFICATION_PREFIX, ORGANIZATION_PREFIX, check, check_record_id,
};

/// Salesforce sends at most this many notifications in one message.
pub const MAX_NOTIFICATIONS: usize = 100;

/// The SOAP 1.1 envelope namespace (`Envelope`, `Header`, `Body`).
pub const SOAP_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The Outbound Messaging namespace (`notifications` and what it holds).
pub const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
/// XML Schema instance (`xsi:type`, `xsi:nil`).
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// One parsed outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The sending org (`00D…`); must match the org the listener expects.
    pub organization_id: String,
    /// The outbound message action (`04k…`), when given.
    pub action_id: Option<String>,
    pub notifications: Vec<Notification>,
}

/// One notification: a record that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notification's own id (`04l…`): Salesforce resends a message with the same ids, so
    /// this is the deduplication key.
    pub id: String,
    /// The object, from the `sObject`'s `xsi:type` (`sf:Opportunity` -> `Opportunity`).
    pub object: String,
    /// The record's id: its checksum verified, and its key prefix the object's when the
    /// object's prefix is known.
    pub record_id: String,
    /// The other fields sent, as text; `None` for `xsi:nil="true"`.
    pub fields: BTreeMap<String, Option<String>>,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("the body is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the body ends before </{0}>: the message is cut short")]
    Truncated(String),
    #[error("the body is not an Outbound Messaging notifications message")]
    NotANotification,
    #[error("<{element}> is in the namespace {found}, not {expected}")]
    WrongNamespace {
        element: String,
        expected: &'static str,
        found: String,
    },
    #[error("the message is not shaped as Salesforce sends it: {0}")]
    Unexpected(String),
    #[error("a DOCTYPE is not allowed in an outbound message")]
    Doctype,
    #[error("the message has no OrganizationId")]
    NoOrganizationId,
    #[error("the message has {0} notifications, more than the 100 Salesforce sends")]
    TooMany(usize),
    #[error("notification {index} is incomplete: {what}")]
    Incomplete { index: usize, what: String },
    /// `index` is the notification's, `None` for the message's own ids.
    #[error("{what} is not a valid id: {reason}")]
    BadId {
        index: Option<usize>,
        what: String,
        reason: IdError,
    },
}

/// What an open element is, in the message's structure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Envelope,
    Body,
    Notifications,
    /// A child of `notifications` other than a `Notification` (`OrganizationId`, ...).
    MessageField(String),
    Notification,
    /// A child of `Notification` (`Id`).
    NotificationField(String),
    SObject,
    /// A field of the record; `nil` when it carries `xsi:nil="true"`.
    RecordField {
        name: String,
        nil: bool,
    },
    /// Content orgsync does not read (the SOAP `Header`, anything nested in a field).
    Ignored,
}

/// A notification being read.
#[derive(Default)]
struct Partial {
    id: Option<String>,
    object: Option<String>,
    has_sobject: bool,
    record_id: Option<String>,
    fields: BTreeMap<String, Option<String>>,
}

/// Everything read so far.
#[derive(Default)]
struct Message {
    /// The root element was opened (a second root is refused).
    root_seen: bool,
    /// The root element was closed: only whitespace, comments and PIs may follow.
    root_closed: bool,
    body_seen: bool,
    notifications_seen: bool,
    organization_id: Option<String>,
    action_id: Option<String>,
    notifications: Vec<Notification>,
    current: Option<Partial>,
}

/// The namespace of a resolved name, as text for errors ("no namespace" when unbound).
fn namespace_text(ns: &ResolveResult<'_>) -> String {
    match ns {
        ResolveResult::Bound(ns) => shown(ns.0),
        ResolveResult::Unbound => "(none)".to_string(),
        ResolveResult::Unknown(prefix) => format!("(undeclared prefix {:?})", shown(prefix)),
    }
}

/// A name or namespace from the message, cut to a length fit for a fault and a log line.
fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 100;
    match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

fn in_namespace(ns: &ResolveResult<'_>, wanted: &str) -> bool {
    matches!(ns, ResolveResult::Bound(n) if n.0 == wanted)
}

/// Refuses `local` unless it is in `expected`.
fn require_ns(
    ns: &ResolveResult<'_>,
    local: &str,
    expected: &'static str,
) -> Result<(), OutboundError> {
    if in_namespace(ns, expected) {
        Ok(())
    } else {
        Err(OutboundError::WrongNamespace {
            element: shown(local),
            expected,
            found: namespace_text(ns),
        })
    }
}

/// The value of the attribute `local` in the XML Schema instance namespace, if present.
fn xsi_attribute(
    resolver: &NamespaceResolver,
    e: &BytesStart<'_>,
    local: &str,
) -> Result<Option<String>, OutboundError> {
    for attribute in e.attributes() {
        let a = attribute.map_err(|err| OutboundError::Malformed(err.to_string()))?;
        let (ns, name) = resolver.resolve_attribute(QName(a.key.0));
        if name.as_ref() == local && in_namespace(&ns, XSI_NS) {
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| OutboundError::Malformed(err.to_string()))?;
            return Ok(Some(value.to_string()));
        }
    }
    Ok(None)
}

impl Message {
    /// The frame of an element opening under `parent`; refuses what does not belong there.
    fn open(
        &mut self,
        parent: Option<&Frame>,
        ns: &ResolveResult<'_>,
        local: &str,
        resolver: &NamespaceResolver,
        e: &BytesStart<'_>,
    ) -> Result<Frame, OutboundError> {
        let unexpected =
            |inside: &str| OutboundError::Unexpected(format!("<{}> inside {inside}", shown(local)));
        Ok(match parent {
            None => {
                if self.root_seen {
                    return Err(OutboundError::Unexpected(format!(
                        "a second root element <{}>",
                        shown(local)
                    )));
                }
                self.root_seen = true;
                if local != "Envelope" {
                    return Err(OutboundError::NotANotification);
                }
                require_ns(ns, local, SOAP_ENVELOPE_NS)?;
                Frame::Envelope
            }
            Some(Frame::Envelope) => {
                require_ns(ns, local, SOAP_ENVELOPE_NS)?;
                match local {
                    "Header" if !self.body_seen => Frame::Ignored,
                    "Body" if !self.body_seen => {
                        self.body_seen = true;
                        Frame::Body
                    }
                    _ => return Err(unexpected("the Envelope")),
                }
            }
            Some(Frame::Body) => {
                if local != "notifications" {
                    return Err(OutboundError::NotANotification);
                }
                require_ns(ns, local, OUTBOUND_NS)?;
                if self.notifications_seen {
                    return Err(OutboundError::Unexpected(
                        "more than one <notifications>".to_string(),
                    ));
                }
                self.notifications_seen = true;
                Frame::Notifications
            }
            Some(Frame::Notifications) => {
                require_ns(ns, local, OUTBOUND_NS)?;
                if local == "Notification" {
                    if self.notifications.len() >= MAX_NOTIFICATIONS {
                        return Err(OutboundError::TooMany(self.notifications.len() + 1));
                    }
                    self.current = Some(Partial::default());
                    Frame::Notification
                } else {
                    Frame::MessageField(local.to_string())
                }
            }
            Some(Frame::Notification) => {
                require_ns(ns, local, OUTBOUND_NS)?;
                let index = self.notifications.len();
                let p = self.current.get_or_insert_with(Partial::default);
                if local == "sObject" {
                    if p.has_sobject {
                        return Err(OutboundError::Incomplete {
                            index,
                            what: "two sObjects".to_string(),
                        });
                    }
                    p.has_sobject = true;
                    p.object = xsi_attribute(resolver, e, "type")?
                        .map(|t| t.rsplit(':').next().unwrap_or(&t).to_string());
                    Frame::SObject
                } else {
                    Frame::NotificationField(local.to_string())
                }
            }
            // The record's fields are in the sObject namespace (enterprise or partner WSDL).
            Some(Frame::SObject) => Frame::RecordField {
                name: local.to_string(),
                nil: xsi_attribute(resolver, e, "nil")?.as_deref() == Some("true"),
            },
            Some(
                Frame::MessageField(_)
                | Frame::NotificationField(_)
                | Frame::RecordField { .. }
                | Frame::Ignored,
            ) => Frame::Ignored,
        })
    }

    /// Takes in the text of a closed element.
    fn close(&mut self, frame: Frame, text: &str) -> Result<(), OutboundError> {
        let value = text.trim();
        let index = self.notifications.len();
        let twice = |what: &str| OutboundError::Unexpected(format!("two <{what}>"));
        match frame {
            Frame::Envelope => self.root_closed = true,
            Frame::MessageField(name) => match name.as_str() {
                "OrganizationId" => {
                    if self.organization_id.is_some() {
                        return Err(twice("OrganizationId"));
                    }
                    self.organization_id = Some(value.to_string());
                }
                "ActionId" => {
                    if self.action_id.is_some() {
                        return Err(twice("ActionId"));
                    }
                    self.action_id = Some(value.to_string());
                }
                _ => {}
            },
            Frame::NotificationField(name) if name == "Id" => {
                let p = self.current.get_or_insert_with(Partial::default);
                if p.id.is_some() {
                    return Err(OutboundError::Incomplete {
                        index,
                        what: "two notification Ids".to_string(),
                    });
                }
                p.id = Some(value.to_string());
            }
            Frame::RecordField { name, nil } => {
                let p = self.current.get_or_insert_with(Partial::default);
                if name == "Id" {
                    if p.record_id.is_some() {
                        return Err(OutboundError::Incomplete {
                            index,
                            what: "two record Ids".to_string(),
                        });
                    }
                    p.record_id = Some(value.to_string());
                } else {
                    p.fields.insert(name, (!nil).then(|| value.to_string()));
                }
            }
            Frame::Notification => {
                let p = self.current.take().unwrap_or_default();
                self.notifications.push(finish(index, p)?);
            }
            Frame::Body
            | Frame::Notifications
            | Frame::NotificationField(_)
            | Frame::SObject
            | Frame::Ignored => {}
        }
        Ok(())
    }

    /// The message, once the whole document was read.
    fn finish(self) -> Result<OutboundMessage, OutboundError> {
        if !self.notifications_seen {
            return Err(OutboundError::NotANotification);
        }
        let organization_id = self
            .organization_id
            .filter(|id| !id.is_empty())
            .ok_or(OutboundError::NoOrganizationId)?;
        check(&organization_id, Some(ORGANIZATION_PREFIX)).map_err(|reason| {
            OutboundError::BadId {
                index: None,
                what: "the OrganizationId".to_string(),
                reason,
            }
        })?;
        let action_id = self.action_id.filter(|id| !id.is_empty());
        if let Some(id) = &action_id {
            check(id, Some(ACTION_PREFIX)).map_err(|reason| OutboundError::BadId {
                index: None,
                what: "the ActionId".to_string(),
                reason,
            })?;
        }
        Ok(OutboundMessage {
            organization_id,
            action_id,
            notifications: self.notifications,
        })
    }
}

/// Parses a notifications message; refuses any message it cannot read in full.
pub fn parse_notifications(xml: &str) -> Result<OutboundMessage, OutboundError> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<(Frame, String)> = Vec::new();
    let mut text = String::new();
    let mut message = Message::default();

    loop {
        let event = reader
            .read_event()
            .map_err(|e| OutboundError::Malformed(e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(OutboundError::Doctype),
            Event::Start(e) | Event::Empty(e) if message.root_closed => {
                return Err(OutboundError::Unexpected(format!(
                    "<{}> after the Envelope",
                    shown(e.local_name().as_ref())
                )));
            }
            Event::Start(e) => {
                let (ns, local) = reader.resolver().resolve_element(e.name());
                let parent = stack.last().map(|(f, _)| f);
                let frame = message.open(parent, &ns, local.as_ref(), reader.resolver(), &e)?;
                stack.push((frame, local.as_ref().to_string()));
                text.clear();
            }
            Event::Empty(e) => {
                let (ns, local) = reader.resolver().resolve_element(e.name());
                let parent = stack.last().map(|(f, _)| f);
                let frame = message.open(parent, &ns, local.as_ref(), reader.resolver(), &e)?;
                message.close(frame, "")?;
                text.clear();
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                if stack.is_empty() && !content.trim().is_empty() {
                    return Err(OutboundError::Malformed(
                        "text outside the root element".to_string(),
                    ));
                }
                text.push_str(&content);
            }
            Event::CData(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    text.push_str(s);
                } else {
                    return Err(OutboundError::Malformed(format!(
                        "unknown entity &{};",
                        &*r
                    )));
                }
            }
            Event::End(_) => {
                // quick-xml has checked that the end tag matches the open element.
                let Some((frame, _)) = stack.pop() else {
                    return Err(OutboundError::Malformed(
                        "an end tag without a start".into(),
                    ));
                };
                message.close(frame, &text)?;
                text.clear();
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if let Some((_, name)) = stack.last() {
        return Err(OutboundError::Truncated(shown(name)));
    }
    if !message.root_seen {
        return Err(OutboundError::NotANotification);
    }
    message.finish()
}

fn finish(index: usize, p: Partial) -> Result<Notification, OutboundError> {
    let incomplete = |what: &str| OutboundError::Incomplete {
        index,
        what: what.to_string(),
    };
    let bad = |what: &str, reason: IdError| OutboundError::BadId {
        index: Some(index),
        what: format!("notification {index}'s {what}"),
        reason,
    };
    let id = p.id.ok_or_else(|| incomplete("no notification Id"))?;
    check(&id, Some(NOTIFICATION_PREFIX)).map_err(|r| bad("Id", r))?;
    if !p.has_sobject {
        return Err(incomplete("no sObject"));
    }
    let object = p
        .object
        .filter(|o| crate::salesforce::soql::is_field_path(o) && !o.contains('.'))
        .ok_or_else(|| incomplete("no sObject type"))?;
    let record_id = p.record_id.ok_or_else(|| incomplete("no record Id"))?;
    check_record_id(&object, &record_id).map_err(|r| {
        let what = match ids::key_prefix(&object) {
            Some(_) => format!("{object} record Id"),
            None => "record Id".to_string(),
        };
        bad(&what, r)
    })?;
    Ok(Notification {
        id,
        object,
        record_id,
        fields: p.fields,
    })
}

/// The reply that tells Salesforce the message was received (`ack = true`) or not.
pub fn ack_envelope(ack: bool) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            "<soapenv:Body>",
            r#"<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
            "<Ack>{}</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
        ),
        ack
    )
}

/// A SOAP fault reply (Salesforce keeps the message and retries it later). `client` is true
/// when the message itself is at fault (`soapenv:Client`), false for our own trouble
/// (`soapenv:Server`).
pub fn fault_envelope(client: bool, message: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>soapenv:{}</faultcode>",
            "<faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
        if client { "Client" } else { "Server" },
        quick_xml::escape::escape(message)
    )
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
