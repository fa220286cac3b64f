//! Records: the generated base set plus a small overlay of writes.
//!
//! Generated records are never stored (see `data.rs`). Creates and updates land in a per-object
//! overlay: a created record gets the next index after the generated ones (so ids stay derived
//! from indices and paging stays a simple index range), an update stores the changed fields only.

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
                .is_some_and(|o| o.deleted.contains(&index))
    }

    /// Deletes a record; false when it does not exist.
    pub fn delete(&self, kind: Kind, index: u64) -> bool {
        if !self.exists(kind, index) {
            return false;
        }
        self.lock().entry(kind).or_default().deleted.insert(index);
        true
    }

    /// True for records created through the API (they have no generated values).
    pub fn is_created(&self, kind: Kind, index: u64) -> bool {
        index >= self.generated(kind)
    }

    /// Stores a new record's fields and returns its index.
    pub fn create(&self, kind: Kind, fields: Map<String, Value>) -> u64 {
        let base = self.generated(kind);
        let mut overlays = self.lock();
        let overlay = overlays.entry(kind).or_default();
        let index = base.saturating_add(overlay.created);
        overlay.created += 1;
        overlay.patches.insert(index, fields);
        index
    }

    /// Merges changed fields into a record; false when the record does not exist.
    pub fn update(&self, kind: Kind, index: u64, fields: Map<String, Value>) -> bool {
        if !self.exists(kind, index) {
            return false;
        }
        let mut overlays = self.lock();
        let overlay = overlays.entry(kind).or_default();
        let patch = overlay.patches.entry(index).or_default();
        for (k, v) in fields {
            patch.insert(k, v);
        }
        *overlay.versions.entry(index).or_default() += 1;
        true
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
        let i = s.create(Kind::SfContact, m);
        assert_eq!(i, 10);
        assert!(s.is_created(Kind::SfContact, 10));
        assert_eq!(s.total(Kind::SfContact), 11);
        assert_eq!(s.total(Kind::HsContact), 10);
        assert_eq!(
            s.find_written(Kind::SfContact, "Email", &json!("a@example.com")),
            vec![10]
        );
        assert!(s.update(Kind::SfContact, 3, Map::new()));
        assert_eq!(s.version(Kind::SfContact, 3), 1);
        assert!(!s.update(Kind::SfContact, 11, Map::new()));
        assert_eq!(s.total(Kind::SfAccount), 1);
        assert!(s.delete(Kind::SfContact, 10));
        assert!(!s.exists(Kind::SfContact, 10));
        assert!(!s.delete(Kind::SfContact, 10));
        assert!(!s.update(Kind::SfContact, 10, Map::new()));
        assert!(s.exists(Kind::HsContact, 9));
    }
}
