//! Zweck: a TLS reverse proxy for cloud-CRM APIs that enforces GDPR purpose limitation and
//! data minimisation on the wire.
//!
//! One request, end to end (DESIGN.md §1); each phase is one file under [`proxy`]:
//!
//! | phase | file | what happens |
//! |---|---|---|
//! | 1 identify | `proxy/identify.rs` ([`caller`]) | app from mTLS certificate or API key; purpose granted? |
//! | 2 route | `proxy/route.rs` | canonical path, upstream by prefix/host, inventory operation, governed or not |
//! | 3 request | `proxy/request.rs` (`proxy/tunnel/`) | writes allowed? query and body minimised, headers filtered |
//! | 4 budget | `proxy/budget.rs` ([`budget`]) | export budget pre-check, page sizes capped |
//! | 5 forward | `proxy/forward.rs` ([`upstream`]) | the upstream's own credential injected, pooled rustls client |
//! | 6 response | `proxy/response.rs`, `proxy/buffer.rs`, `proxy/csv.rs`, `proxy/stream.rs` | decode, parse, locate records, consent, field actions, links |
//! | 7 charge | `proxy/budget.rs` | records delivered charged to the budget |
//! | 8 log | `proxy/log.rs` ([`audit`]) | transfer record appended before release |
//! | 9 respond | `proxy/respond.rs` ([`error`]) | headers stamped, metrics counted, refusals as problem+json |
//!
//! The pure parts below the pipeline (no arrow points up): [`policy`] (inventories, purposes,
//! the engine, query minimisation, CSV), [`body`] (codecs, media types, multipart, JSON
//! stream), [`json`] (the strict document model), [`links`] (link rewriting), [`budget`],
//! [`audit`] (writer, verify, report, ropa), [`pattern`] (route patterns), [`dialect`],
//! [`diagnostic`] (file:line:column messages), [`units`] (durations and sizes).
//!
//! Around it: [`server`] accepts TLS connections and shuts down gracefully (HTTP/1.1 with a
//! lingering close, [`linger`], so a refused client reads its answer), [`tls`] builds the
//! rustls configs and reads client identities, [`admin`] serves health, Prometheus metrics
//! ([`metrics`], with each upstream's connection pool and its gauges in [`pool`]) and
//! `POST /reload`, [`logging`]
//! writes the process log (text or JSON lines), [`state`] holds what a request needs and the
//! live part a reload swaps, [`reload`] reloads config, keys, credentials, certificates and
//! policies, [`preflight`] runs every check `serve` runs before it listens (for `serve`,
//! `config check` and reloads alike), [`runtime`] starts and stops a whole Zweck, [`config`]
//! loads `zweck.yaml` (raw -> compiled), [`secrets`] reads and writes key files, [`keys`]
//! rotates them, [`certs`] and [`dev`] make development key material, [`crm_double`] stands
//! in for the CRMs in tests and demos, [`discover`] builds inventories from a CRM's own
//! metadata (`zweck inventory discover`), [`incident`] turns the verified log into the facts
//! of a breach and the Art. 33(3) notification draft (`zweck incident open`), [`drift`]
//! counts the fields governed bodies carry that the inventory does not classify, [`shadow`]
//! compares a candidate policy on real traffic, [`cli`] holds the command line's definitions
//! and glue that tests parse (the policy workflow, incidents).

pub mod admin;
pub mod audit;
pub mod body;
pub mod budget;
pub mod caller;
pub mod certs;
pub mod cli;
pub mod config;
pub mod crm_double;
pub mod dev;
pub mod diagnostic;
pub mod dialect;
pub mod discover;
pub mod drift;
pub mod error;
pub mod incident;
pub mod json;
pub mod keys;
pub mod linger;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod pattern;
pub mod policy;
pub mod pool;
pub mod preflight;
pub mod proxy;
pub mod reload;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod shadow;
pub mod state;
pub mod tls;
pub mod units;
pub mod upstream;

/// The `eventually` helpers of the integration tests, for the unit tests too.
#[cfg(test)]
#[path = "../tests/common/eventually.rs"]
mod eventually;
