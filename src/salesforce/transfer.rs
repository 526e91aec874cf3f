//! Request bodies from files and reply bodies into files, for the client's request loop
//! (`client::send_once`): a Bulk upload is streamed from its file from the start on every
//! attempt, and a Bulk results download is streamed into its file, emptied first, so that
//! neither is ever whole in memory (`bulk::files`).

use super::error::{ErrorClass, SalesforceError};

/// A handle on `file` at its start, and its length.
pub(crate) fn rewound(file: &std::fs::File) -> Result<(std::fs::File, u64), String> {
    use std::io::Seek as _;
    let mut file = file
        .try_clone()
        .map_err(|e| format!("cannot read the upload file: {e}"))?;
    file.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| format!("cannot read the upload file: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read the upload file: {e}"))?
        .len();
    Ok((file, len))
}

/// Streams a reply's body into `file` (emptied first: a retried download starts over).
pub(crate) async fn download(
    org: &str,
    mut reply: reqwest::Response,
    file: &std::fs::File,
) -> Result<(), SalesforceError> {
    use std::io::{Seek as _, Write as _};
    let failed = |e: std::io::Error| {
        SalesforceError::client(
            org,
            "DOWNLOAD_FAILED",
            format!("cannot write the downloaded results to a temporary file: {e}"),
            ErrorClass::Transient,
        )
    };
    let mut out = file.try_clone().map_err(failed)?;
    out.set_len(0).map_err(failed)?;
    out.seek(std::io::SeekFrom::Start(0)).map_err(failed)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    while let Some(chunk) = reply
        .chunk()
        .await
        .map_err(|e| SalesforceError::from_transport(org, &e))?
    {
        out.write_all(&chunk).map_err(failed)?;
    }
    out.flush().map_err(failed)?;
    Ok(())
}
