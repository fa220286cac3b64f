//! Phase 1, identify: who is calling, for which purpose.
//!
//! Runs first, on nothing but the TLS peer's certificate and the request headers, so an
//! unknown caller learns nothing else about Zweck (not even which paths exist). Changes
//! nothing. Its errors: `unknown-app` (401: no credential, or one naming no configured app)
//! and `purpose-missing` / `purpose-not-granted` (403). How credentials are matched is
//! `caller.rs`.

use http::HeaderMap;

use super::ConnInfo;
use crate::caller::Caller;
use crate::error::ProxyError;
use crate::state::Live;

/// The app and the purpose it asks for, among the apps of the request's snapshot.
pub fn identify(live: &Live, conn: &ConnInfo, headers: &HeaderMap) -> Result<Caller, ProxyError> {
    live.identities.identify(conn.identity.as_ref(), headers)
}
