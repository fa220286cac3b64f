//! Breach support (issue 15): what an incident is made of after the fact.
//!
//! `report` turns the verified transfer log into the facts of an incident and the GDPR
//! Art. 33(3) notification draft (`zweck incident open`, `list`, `close`). Detection,
//! alerts and containment write the `incident` and `containment` entries it reads.

pub mod report;
