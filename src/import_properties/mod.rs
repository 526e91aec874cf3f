//! `orgsync import-properties`: turns the MuleSoft template's `mule.<env>.properties` and
//! `common.properties` into an orgsync `config/<env>.toml`.
//!
//! Three layers, pure to I/O: [`parse_properties`] reads the Java properties format (`key=value`,
//! `key: value`, `key value`, `#`/`!` comments, `\` line continuations, `\t`/`\uXXXX` escapes);
//! [`convert`] maps the template's keys (DESIGN §1) to orgsync's TOML and says what it could not
//! convert; [`run`] reads the files, writes the result and prints the report. Secrets
//! (`sfdc.x.password`, `sfdc.x.securityToken`) are never written to the file: they are listed as
//! the environment variables to set instead. Unknown keys and values that cannot be converted
//! are reported, never dropped silently.
//!
//! The files: `properties` (the parser), `convert` (the mapping), `run` (the I/O); this module
//! only re-exports.

mod convert;
mod properties;
mod run;

pub use convert::{Conversion, convert};
pub use properties::{SyntaxError, parse_properties};
pub use run::{ImportError, ImportRequest, read_properties_file, run};
