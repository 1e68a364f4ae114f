//! Reading PEM files: certificate chains, private keys (PKCS#8, PKCS#1,
//! SEC1) and CA bundles, and a certificate's expiry. Errors name the file.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// A PEM file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct FileError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub problem: String,
    /// The file at fault is the private key (not the certificate).
    pub is_key: bool,
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> FileError {
    FileError {
        path: path.display().to_string(),
        problem: problem.to_string(),
        is_key: false,
    }
}

fn key_error(path: &Path, problem: impl std::fmt::Display) -> FileError {
    FileError {
        is_key: true,
        ..file_error(path, problem)
    }
}

/// The certificates of a PEM file, in order; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| key_error(path, e))
}

/// A CA bundle as a root store.
pub fn roots(path: &Path) -> Result<RootCertStore, FileError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(store)
}

/// A chain and its key, checked to belong together. An error names the
/// file at fault (the key file when the key does not match the certificate).
pub fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, FileError> {
    let chain = certificates(cert_file)?;
    let key = private_key(key_file)?;
    CertifiedKey::from_der(chain, key, &super::provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_error(
            key_file,
            format_args!("does not match the certificate in {}", cert_file.display()),
        ),
        other => key_error(key_file, other),
    })
}

/// When the leaf certificate of `key` stops being valid.
pub fn not_after(key: &CertifiedKey) -> Option<SystemTime> {
    let leaf = key.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let secs = u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// A certificate closer than this to its end is warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// Logs a warning when the leaf of `key` (read from `cert_file`) expires
/// within [`EXPIRY_WARNING`] or has expired; returns its end.
pub fn warn_if_expiring(cert_file: &Path, key: &CertifiedKey) -> Option<SystemTime> {
    let end = not_after(key)?;
    let left = end
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    if left < EXPIRY_WARNING {
        tracing::warn!(
            file = ?cert_file,
            expires_in = ?Duration::from_secs(left.as_secs()),
            "TLS certificate expires within 7 days"
        );
    }
    Some(end)
}
