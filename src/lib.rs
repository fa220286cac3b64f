//! Zweck: a TLS reverse proxy for cloud-CRM APIs that enforces GDPR purpose limitation and
//! data minimisation on the wire.
//!
//! One request, end to end (DESIGN.md §1); each step is a named phase in [`proxy`]:
//!
//! 1. identify  [`caller`]   app from mTLS certificate or API key; purpose granted?
//! 2. route     [`route`]    canonical path, upstream by prefix/host, inventory resource
//! 3. request   [`policy`]   writes allowed for the purpose? request body minimised
//! 4. budget                 export budget pre-check (a later issue)
//! 5. forward   [`upstream`] the upstream's own credential injected, pooled rustls client
//! 6. response  [`links`]    decode, parse, locate records, consent, field actions, links
//! 7. charge                 records delivered charged to the budget (a later issue)
//! 8. log                    transfer record appended before release (a later issue)
//! 9. respond   [`error`]    failures become problem+json in one place
//!
//! Around it: [`server`] accepts TLS connections and shuts down gracefully, [`admin`] serves
//! health and Prometheus metrics, [`crm_double`] stands in for the CRMs in tests and demos,
//! [`certs`] makes development key material, [`config`] loads `zweck.yaml`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod body;
pub mod budget;
pub mod caller;
pub mod certs;
pub mod config;
pub mod crm_double;
pub mod dev;
pub mod diagnostic;
pub mod dialect;
pub mod error;
pub mod json;
pub mod links;
pub mod metrics;
pub mod pattern;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod state;
pub mod tls;
pub mod units;
pub mod upstream;

/// The `eventually` helpers of the integration tests, for the unit tests too.
#[cfg(test)]
#[path = "../tests/common/eventually.rs"]
mod eventually;
