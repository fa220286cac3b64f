//! Records: the generated base set plus a small overlay of writes.
//!
//! Generated records are never stored (see `data.rs`). Creates and updates land in a per-object
//! overlay: a created record gets the next index after the generated ones (so ids stay derived
//! from indices and paging stays a simple index range), an update stores the changed fields only.
//!
//! Atomic units (a Dataverse change set, a Salesforce composite with `allOrNone`) write through
//! a [`Journal`]; rolling it back undoes their writes, as the real CRMs roll back a failed
//! transaction. A created record rolled back no longer exists (the last one gives its index
//! back; an earlier one stays a gap, as a rolled-back id does in a real CRM).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::data::Generator;

/// One object collection of one dialect. Each dialect is its own CRM, so writes do not leak
/// between them even though they render the same generated people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    SfContact,
    SfLead,
    SfAccount,
    /// The org's custom object `Invoice__c`: one per generated contact.
    SfInvoice,
    HsContact,
    HsCompany,
    DvContact,
}

impl Kind {
    fn is_company(self) -> bool {
        matches!(self, Kind::SfAccount | Kind::HsCompany)
    }
}

#[derive(Default)]
struct Overlay {
    created: u64,
    patches: HashMap<u64, Map<String, Value>>,
    /// Deleted records: they no longer exist for any read or write.
    deleted: std::collections::HashSet<u64>,
    /// Updates per record, so ETags and modification stamps change on write.
    versions: HashMap<u64, u64>,
    /// Created records whose creation was rolled back (gaps in the index range).
    rolled_back: std::collections::HashSet<u64>,
}

/// The undo log of one atomic unit: every write made through it, to be undone by
/// [`Store::rollback`] when the unit fails.
#[derive(Default)]
pub(crate) struct Journal {
    undo: Mutex<Vec<Undo>>,
}

enum Undo {
    Created {
        kind: Kind,
        index: u64,
    },
    Updated {
        kind: Kind,
        index: u64,
        patch: Option<Map<String, Value>>,
        version: Option<u64>,
    },
    Deleted {
        kind: Kind,
        index: u64,
    },
}

impl Journal {
    fn push(&self, undo: Undo) {
        self.undo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(undo);
    }
}

pub(crate) struct Store {
    pub gen: Generator,
    /// A std `Mutex`: held only for map operations, never across an `.await`.
    overlays: Mutex<HashMap<Kind, Overlay>>,
}

impl Store {
    pub fn new(gen: Generator) -> Self {
        Store {
            gen,
            overlays: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Kind, Overlay>> {
        self.overlays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of generated records of this kind.
    pub fn generated(&self, kind: Kind) -> u64 {
        if kind.is_company() {
            self.gen.companies()
        } else {
            self.gen.contacts
        }
    }

    /// Generated plus created records; valid indices are `0..total`.
    pub fn total(&self, kind: Kind) -> u64 {
        let created = self.lock().get(&kind).map_or(0, |o| o.created);
        self.generated(kind).saturating_add(created)
    }

    pub fn exists(&self, kind: Kind, index: u64) -> bool {
        index < self.total(kind)
            && !self
                .lock()
                .get(&kind)
                .is_some_and(|o| o.rolled_back.contains(&index) || o.deleted.contains(&index))
    }

    /// Deletes a record (through `journal`, inside an atomic unit); false when it does not
    /// exist.
    pub fn delete(&self, journal: Option<&Journal>, kind: Kind, index: u64) -> bool {
        if !self.exists(kind, index) {
            return false;
        }
        self.lock().entry(kind).or_default().deleted.insert(index);
        if let Some(j) = journal {
            j.push(Undo::Deleted { kind, index });
        }
        true
    }

    /// True for records created through the API (they have no generated values).
    pub fn is_created(&self, kind: Kind, index: u64) -> bool {
        index >= self.generated(kind)
    }

    /// Stores a new record's fields and returns its index (undone with `journal`'s unit).
    pub fn create(&self, journal: Option<&Journal>, kind: Kind, fields: Map<String, Value>) -> u64 {
        let base = self.generated(kind);
        let mut overlays = self.lock();
        let overlay = overlays.entry(kind).or_default();
        let index = base.saturating_add(overlay.created);
        overlay.created += 1;
        overlay.patches.insert(index, fields);
        if let Some(j) = journal {
            j.push(Undo::Created { kind, index });
        }
        index
    }

    /// Merges changed fields into a record (undone with `journal`'s unit); false when the
    /// record does not exist.
    pub fn update(
        &self,
        journal: Option<&Journal>,
        kind: Kind,
        index: u64,
        fields: Map<String, Value>,
    ) -> bool {
        if !self.exists(kind, index) {
            return false;
        }
        let mut overlays = self.lock();
        let overlay = overlays.entry(kind).or_default();
        if let Some(j) = journal {
            j.push(Undo::Updated {
                kind,
                index,
                patch: overlay.patches.get(&index).cloned(),
                version: overlay.versions.get(&index).copied(),
            });
        }
        let patch = overlay.patches.entry(index).or_default();
        for (k, v) in fields {
            patch.insert(k, v);
        }
        *overlay.versions.entry(index).or_default() += 1;
        true
    }

    /// Undoes every write made through `journal`, latest first.
    pub fn rollback(&self, journal: &Journal) {
        let undo = std::mem::take(
            &mut *journal
                .undo
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let base = |kind| self.generated(kind);
        let mut overlays = self.lock();
        for step in undo.into_iter().rev() {
            match step {
                Undo::Created { kind, index } => {
                    let overlay = overlays.entry(kind).or_default();
                    overlay.patches.remove(&index);
                    overlay.versions.remove(&index);
                    if index + 1 == base(kind).saturating_add(overlay.created) {
                        overlay.created -= 1;
                    } else {
                        overlay.rolled_back.insert(index);
                    }
                }
                Undo::Updated {
                    kind,
                    index,
                    patch,
                    version,
                } => {
                    let overlay = overlays.entry(kind).or_default();
                    match patch {
                        Some(p) => overlay.patches.insert(index, p),
                        None => overlay.patches.remove(&index),
                    };
                    match version {
                        Some(v) => overlay.versions.insert(index, v),
                        None => overlay.versions.remove(&index),
                    };
                }
                Undo::Deleted { kind, index } => {
                    overlays.entry(kind).or_default().deleted.remove(&index);
                }
            }
        }
    }

    /// The stored fields of a record (created values or updates), if any.
    pub fn patch(&self, kind: Kind, index: u64) -> Option<Map<String, Value>> {
        self.lock().get(&kind)?.patches.get(&index).cloned()
    }

    /// How many times a record was updated.
    pub fn version(&self, kind: Kind, index: u64) -> u64 {
        self.lock()
            .get(&kind)
            .and_then(|o| o.versions.get(&index).copied())
            .unwrap_or(0)
    }

    /// Indices of records whose written field `key` equals `value`.
    pub fn find_written(&self, kind: Kind, key: &str, value: &Value) -> Vec<u64> {
        let overlays = self.lock();
        let Some(overlay) = overlays.get(&kind) else {
            return Vec::new();
        };
        let mut hits: Vec<u64> = overlay
            .patches
            .iter()
            .filter(|(_, p)| p.get(key) == Some(value))
            .map(|(i, _)| *i)
            .collect();
        hits.sort_unstable();
        hits
    }
}

/// Sets every value of a rendered record to null except the keys listed: a created record only
/// has what the client sent, plus system fields.
pub(crate) fn blank_except(record: &mut Map<String, Value>, keep: &[&str]) {
    for (k, v) in record.iter_mut() {
        if !keep.contains(&k.as_str()) {
            *v = Value::Null;
        }
    }
}

/// Applies stored fields over a rendered record.
pub(crate) fn apply(record: &mut Map<String, Value>, patch: Option<Map<String, Value>>) {
    if let Some(patch) = patch {
        for (k, v) in patch {
            record.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_records_extend_the_index_range() {
        let s = Store::new(Generator::new(1, 10));
        assert_eq!(s.total(Kind::SfContact), 10);
        let mut m = Map::new();
        m.insert("Email".into(), json!("a@example.com"));
        let i = s.create(None, Kind::SfContact, m);
        assert_eq!(i, 10);
        assert!(s.is_created(Kind::SfContact, 10));
        assert_eq!(s.total(Kind::SfContact), 11);
        assert_eq!(s.total(Kind::HsContact), 10);
        assert_eq!(
            s.find_written(Kind::SfContact, "Email", &json!("a@example.com")),
            vec![10]
        );
        assert!(s.update(None, Kind::SfContact, 3, Map::new()));
        assert_eq!(s.version(Kind::SfContact, 3), 1);
        assert!(!s.update(None, Kind::SfContact, 11, Map::new()));
        assert_eq!(s.total(Kind::SfAccount), 1);
        assert!(s.delete(None, Kind::SfContact, 10));
        assert!(!s.exists(Kind::SfContact, 10));
        assert!(!s.delete(None, Kind::SfContact, 10));
        assert!(!s.update(None, Kind::SfContact, 10, Map::new()));
        assert!(s.exists(Kind::HsContact, 9));
    }

    #[test]
    fn a_rolled_back_journal_leaves_no_write_behind() {
        let s = Store::new(Generator::new(1, 10));
        let field = |v: &str| {
            let mut m = Map::new();
            m.insert("Email".into(), json!(v));
            m
        };
        s.update(None, Kind::SfContact, 2, field("before@example.com"));
        let j = Journal::default();
        let created = s.create(Some(&j), Kind::SfContact, field("new@example.com"));
        s.update(Some(&j), Kind::SfContact, 2, field("after@example.com"));
        s.update(Some(&j), Kind::SfContact, 3, field("three@example.com"));
        assert!(s.delete(Some(&j), Kind::SfContact, 4));
        // a write outside the unit, between its writes, survives its rollback
        let outside = s.create(None, Kind::SfContact, field("outside@example.com"));
        s.rollback(&j);
        assert!(!s.exists(Kind::SfContact, created), "the create is undone");
        assert!(s.exists(Kind::SfContact, 4), "the delete is undone");
        assert!(s.exists(Kind::SfContact, outside));
        assert_eq!(
            s.patch(Kind::SfContact, 2)
                .and_then(|p| p.get("Email").cloned()),
            Some(json!("before@example.com"))
        );
        assert_eq!(s.version(Kind::SfContact, 2), 1);
        assert_eq!(s.patch(Kind::SfContact, 3), None);
        assert_eq!(s.version(Kind::SfContact, 3), 0);
        assert!(s
            .find_written(Kind::SfContact, "Email", &json!("new@example.com"))
            .is_empty());
        // the last create gives its index back
        let j = Journal::default();
        let last = s.create(Some(&j), Kind::SfContact, field("x@example.com"));
        s.rollback(&j);
        assert_eq!(s.total(Kind::SfContact), last);
    }
}
