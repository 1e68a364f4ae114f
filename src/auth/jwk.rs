//! Which keys of a JWKS may verify tokens, and turning them into [`Key`]s.
//! Shared by every JWKS source (local files, fetched sets): the rules here decide
//! what a key may ever be used for, [`Key::fits`] what it is used for with
//! one token.

use jsonwebtoken::jwk::{CommonParameters, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::keys::{Key, MIN_HMAC_SECRET_BYTES};

/// The key a JWK gives for verifying signatures: `Ok(None)` when its
/// parameters say it is not for that (`use` other than `sig`, `key_ops`
/// without `verify`, or an `alg` that is no JWS signature algorithm), so it
/// is never used. `Err` is the problem with a key that should be usable.
pub fn verification_key(jwk: &Jwk) -> Result<Option<Key>, String> {
    let Some(alg) = signature_alg(&jwk.common) else {
        return Ok(None);
    };
    if !for_verification(&jwk.common) {
        return Ok(None);
    }
    let kid = jwk
        .common
        .key_id
        .clone()
        .ok_or_else(|| "has no \"kid\"".to_owned())?;
    let key =
        DecodingKey::from_jwk(jwk).map_err(|e| format!("(kid {kid:?}) is not usable: {e}"))?;
    if key.family() == AlgorithmFamily::Hmac
        && key.try_get_as_bytes().map_or(0, <[u8]>::len) < MIN_HMAC_SECRET_BYTES
    {
        return Err(format!(
            "(kid {kid:?}) is an HMAC secret shorter than 32 bytes"
        ));
    }
    let material = serde_json::to_vec(jwk).unwrap_or_default();
    Ok(Some(Key {
        kid: Some(kid.into()),
        family: key.family(),
        alg,
        key,
        fingerprint: super::keys::fingerprint(&material),
    }))
}

/// `use` absent or `sig`, and `key_ops` absent or including `verify`.
fn for_verification(common: &CommonParameters) -> bool {
    let usable = matches!(common.public_key_use, None | Some(PublicKeyUse::Signature));
    let operable = common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    usable && operable
}

/// `Some(None)` without `alg`, `Some(Some(alg))` for a JWS signature
/// algorithm, `None` for anything else (an encryption or unknown algorithm:
/// the key can verify no token).
fn signature_alg(common: &CommonParameters) -> Option<Option<Algorithm>> {
    match common.key_algorithm {
        None => Some(None),
        Some(alg) => Algorithm::try_from(alg).ok().map(Some),
    }
}
