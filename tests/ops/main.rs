//! Operations tests: the `orgsync` binary's `import-properties` and `demo` commands, run as
//! child processes. One test binary (one link step) for all of them.

mod demo;
mod import_properties;
