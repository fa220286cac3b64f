//! Inventories: each `inventory/<dialect>.yaml` becomes one [`Inventory`]: the routes it
//! governs (operations, matched by pattern), and per resource the record selectors, the field
//! trees of categories (fields and envelope), child resources and consent signals.
//!
//! [`compile_all`] takes every inventory file; [`InventoryFile`] compiles the resources of one,
//! step by step, in the order its diagnostics read: operations, records, type key, envelope,
//! fields, children, consent, `unclassified`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{category, did_you_mean, duplicates, is_inventory, parse_yaml, Source};
use crate::dialect::Dialect;
use crate::pattern::RoutePattern;
use crate::policy::diagnostic::Diags;
use crate::policy::model::{OrderedMap, RawInventory, RawOperation, RawResource, SpStr, Spanned};
use crate::policy::select::{parse_field_path, parse_key_path, FieldNode, RecordSelector};
use crate::policy::set::{
    BodyFormat, ConsentSignal, Inventory, InventoryRoutes, OpKind, Operation, Resource,
    ResourceName, RouteClass, TunnelKind, Withheld,
};
use crate::policy::taxonomy::Taxonomy;
use crate::policy::FastMap;

/// The consent signals the inventories define, which purposes' `requires_consent` names.
#[derive(Debug, Default)]
pub(super) struct Signals {
    /// Every signal any resource defines.
    pub(super) defined: BTreeSet<String>,
    /// The resources that describe records (`dialect/name`) with the signals each defines: a
    /// purpose requiring a signal a resource lacks never sees that resource's records.
    pub(super) by_resource: Vec<(String, Vec<String>)>,
}

impl Signals {
    fn add(&mut self, inv: &Inventory) {
        for r in &inv.resources {
            self.defined.extend(r.consent.keys().cloned());
            if !r.records.is_empty() {
                self.by_resource.push((
                    format!("{}/{}", inv.dialect, r.name),
                    r.consent.keys().cloned().collect(),
                ));
            }
        }
    }
}

/// Compiles every inventory file among `sources`: one inventory per dialect.
pub(super) fn compile_all(
    sources: &[Source],
    tax: &Taxonomy,
    diags: &mut Diags,
) -> (HashMap<Dialect, Inventory>, Signals) {
    let mut inventories: HashMap<Dialect, Inventory> = HashMap::new();
    let mut signals = Signals::default();
    let mut first_file: HashMap<Dialect, PathBuf> = HashMap::new();
    for src in sources.iter().filter(|s| is_inventory(&s.rel)) {
        let Some(raw) = parse_yaml::<RawInventory>(src, diags) else {
            continue;
        };
        let Some(inv) = compile_inventory(src, &raw, tax, diags) else {
            continue;
        };
        signals.add(&inv);
        if let Some(prev) = first_file.get(&inv.dialect) {
            diags.error(
                &src.display,
                Some(&raw.dialect.referenced),
                format!(
                    "a second inventory for dialect `{}` (the first is {})",
                    inv.dialect,
                    prev.display()
                ),
            );
            continue;
        }
        first_file.insert(inv.dialect, src.display.clone());
        inventories.insert(inv.dialect, inv);
    }
    (inventories, signals)
}

fn compile_inventory(
    src: &Source,
    raw: &RawInventory,
    tax: &Taxonomy,
    diags: &mut Diags,
) -> Option<Inventory> {
    let Some(dialect) = Dialect::from_name(&raw.dialect.value) else {
        diags.error(
            &src.display,
            Some(&raw.dialect.referenced),
            format!(
                "unknown dialect `{}` (salesforce, hubspot, dynamics or generic)",
                raw.dialect.value
            ),
        );
        return None;
    };
    let mut ungoverned = Vec::new();
    for u in &raw.ungoverned {
        match RoutePattern::parse(&u.value) {
            Ok(p) => ungoverned.push(p),
            Err(e) => diags.error(&src.display, Some(&u.referenced), e.to_string()),
        }
    }
    duplicates(src, &raw.resources, "resource", diags);
    for (_, res) in raw.resources.iter() {
        duplicates(src, &res.children, "child path", diags);
        duplicates(src, &res.consent, "consent signal", diags);
    }
    let by_type = record_types(src, raw, diags);
    let file = InventoryFile {
        src,
        tax,
        dialect,
        names: raw
            .resources
            .iter()
            .map(|(n, _)| n.value.as_str())
            .collect(),
    };
    let mut resources = Vec::new();
    let mut operations = Vec::new();
    for (i, (name, res)) in raw.resources.iter().enumerate() {
        resources.push(file.resource(i, name, res, &mut operations, diags));
    }
    let routes = InventoryRoutes::new(&operations, &ungoverned);
    Some(Inventory {
        dialect,
        ungoverned,
        operations,
        resources,
        by_type,
        routes,
    })
}

/// The record types (resource names and their `types`) to resource indices. Taken before the
/// resources compile, so children and type keys can refer to resources defined later.
fn record_types(src: &Source, raw: &RawInventory, diags: &mut Diags) -> FastMap<String, usize> {
    let mut by_type: FastMap<String, usize> = Default::default();
    for (i, (name, res)) in raw.resources.iter().enumerate() {
        // A resource that only holds tunnels or metadata routes is no record type.
        if no_records(res) {
            continue;
        }
        for t in std::iter::once(name).chain(res.types.iter()) {
            if by_type.insert(t.value.clone(), i).is_some() {
                diags.error(
                    &src.display,
                    Some(&t.referenced),
                    format!("record type `{}` names two resources", t.value),
                );
            }
        }
    }
    by_type
}

/// True when every operation of the resource is a batch tunnel or a metadata route (and
/// there is one): its bodies are sub-requests or descriptions, never records.
fn no_records(res: &RawResource) -> bool {
    !res.operations.is_empty()
        && res
            .operations
            .iter()
            .all(|o| o.value.tunnel.is_some() || o.value.op == "metadata")
}

/// What compiling the resources of one inventory file reads.
struct InventoryFile<'a> {
    src: &'a Source,
    tax: &'a Taxonomy,
    dialect: Dialect,
    /// The resource names in file order: `children` and `objects` name resources, the
    /// compiled set refers to them by index.
    names: Vec<&'a str>,
}

impl InventoryFile<'_> {
    fn file(&self) -> &Path {
        &self.src.display
    }

    /// Compiles resource `idx`; its operations join `operations` (those of every resource of
    /// the file, so a route claimed twice is found).
    fn resource(
        &self,
        idx: usize,
        name: &SpStr,
        res: &RawResource,
        operations: &mut Vec<Operation>,
        diags: &mut Diags,
    ) -> Resource {
        for op in &res.operations {
            if let Some(o) = self.operation(idx, name, op, operations, diags) {
                operations.push(o);
            }
        }
        let records = self.records(name, res, diags);
        let type_key = res
            .type_key
            .as_ref()
            .and_then(|t| match parse_key_path(&t.value) {
                Ok(k) => Some(k),
                Err(e) => {
                    diags.error(self.file(), Some(&t.referenced), format!("type_key: {e}"));
                    None
                }
            });
        let counts = res
            .counts
            .iter()
            .filter_map(|c| match parse_key_path(&c.value) {
                Ok(k) => Some(k),
                Err(e) => {
                    diags.error(self.file(), Some(&c.referenced), format!("counts: {e}"));
                    None
                }
            })
            .collect();
        let mut envelope = FieldNode::default();
        let where_ = format!("{} envelope", name.value);
        self.classify_map(&res.envelope, &mut envelope, "envelope", &where_, diags);
        let mut fields = FieldNode::default();
        self.classify_map(&res.fields, &mut fields, "field", &name.value, diags);
        self.children(res, &mut fields, diags);
        envelope.place_all();
        fields.place_all();
        Resource {
            name: name.value.clone(),
            records,
            type_key,
            envelope,
            fields,
            consent: self.consent(res, diags),
            keep_unclassified: self.keep_unclassified(name, res, diags),
            counts,
        }
    }

    /// One route of resource `idx`. `None` after an error was reported; a route an
    /// `earlier` operation already claims is compiled with a warning (it is never used).
    fn operation(
        &self,
        idx: usize,
        name: &SpStr,
        op: &Spanned<RawOperation>,
        earlier: &[Operation],
        diags: &mut Diags,
    ) -> Option<Operation> {
        let o = &op.value;
        let at = Some(&op.referenced);
        let pattern = match RoutePattern::parse(&format!("{} {}", o.method, o.path)) {
            Ok(p) => p,
            Err(e) => {
                diags.error(self.file(), at, e.to_string());
                return None;
            }
        };
        let kind = self.op_kind(op, diags)?;
        let class = self.route_class(op, kind, &pattern, diags)?;
        let tunnel = self.tunnel(op, kind, &pattern, diags)?;
        let (format, objects) = self.csv_format(op, kind, diags)?;
        let withheld = self.withheld(op, kind, diags)?;
        if let Some(prev) = earlier.iter().find(|p| p.pattern.same_route(&pattern)) {
            diags.warn(
                self.file(),
                at,
                format!(
                    "route `{}` is already an operation of `{}`; this one is never used",
                    pattern.template(),
                    prev.resource
                ),
            );
        }
        Some(Operation {
            dialect: self.dialect,
            resource: ResourceName(name.value.as_str().into()),
            resource_idx: idx,
            op: kind,
            class,
            pattern,
            tunnel,
            format,
            objects,
            withheld,
        })
    }

    /// `op:` read, write, delete or metadata. A metadata route reads descriptions: it is a
    /// `GET` without `class`, `tunnel` or `format` (it is never charged nor filtered).
    fn op_kind(&self, op: &Spanned<RawOperation>, diags: &mut Diags) -> Option<OpKind> {
        let o = &op.value;
        let at = Some(&op.referenced);
        match o.op.as_str() {
            "read" => Some(OpKind::Read),
            "write" => Some(OpKind::Write),
            "delete" => Some(OpKind::Delete),
            "metadata" => {
                let problem = if o.method != "GET" {
                    Some("a metadata route is a `GET`: changing a schema is no read of it")
                } else if o.class.is_some() {
                    Some("a metadata route has no `class`: it is never charged to a budget")
                } else if o.tunnel.is_some() || o.format.is_some() || o.objects.is_some() {
                    Some("a metadata route passes unchanged: no `tunnel`, `format` or `objects`")
                } else {
                    None
                };
                match problem {
                    Some(message) => {
                        diags.error(self.file(), at, message.to_string());
                        None
                    }
                    None => Some(OpKind::Metadata),
                }
            }
            other => {
                diags.error(
                    self.file(),
                    at,
                    format!("unknown op `{other}` (read, write, delete or metadata)"),
                );
                None
            }
        }
    }

    /// `class:`, which every governed read needs (budgets count by it); other operations
    /// default to `single`.
    fn route_class(
        &self,
        op: &Spanned<RawOperation>,
        kind: OpKind,
        pattern: &RoutePattern,
        diags: &mut Diags,
    ) -> Option<RouteClass> {
        let at = Some(&op.referenced);
        match (&op.value.class, kind) {
            (Some(c), _) => {
                let class = RouteClass::from_name(c);
                if class.is_none() {
                    diags.error(
                        self.file(),
                        at,
                        format!("unknown class `{c}` (single, list or bulk_export)"),
                    );
                }
                class
            }
            (None, OpKind::Metadata) => Some(RouteClass::Single),
            (None, OpKind::Read) => {
                diags.error(
                    self.file(),
                    at,
                    format!(
                        "governed read route `{}` has no class (single, list or bulk_export)",
                        pattern.template()
                    ),
                );
                None
            }
            (None, _) => Some(RouteClass::Single),
        }
    }

    /// `tunnel:`: `Some(None)` for an ordinary route, `None` after an error was reported.
    fn tunnel(
        &self,
        op: &Spanned<RawOperation>,
        kind: OpKind,
        pattern: &RoutePattern,
        diags: &mut Diags,
    ) -> Option<Option<TunnelKind>> {
        let Some(t) = &op.value.tunnel else {
            return Some(None);
        };
        let at = Some(&op.referenced);
        match TunnelKind::from_name(t) {
            Some(k) if kind == OpKind::Read && pattern.template().starts_with("POST ") => {
                Some(Some(k))
            }
            Some(_) => {
                diags.error(
                    self.file(),
                    at,
                    "a tunnel is `method: POST` with `op: read`: its sub-requests are governed part by part".to_string(),
                );
                None
            }
            None => {
                diags.error(
                    self.file(),
                    at,
                    format!("unknown tunnel `{t}` (odata_batch, sf_composite, sf_composite_batch, sf_tree or sf_graph)"),
                );
                None
            }
        }
    }

    /// `withheld:` (`remove` or `null`), which only a read's records can be. `None` after an
    /// error was reported.
    fn withheld(
        &self,
        op: &Spanned<RawOperation>,
        kind: OpKind,
        diags: &mut Diags,
    ) -> Option<Withheld> {
        let (file, at) = (self.file(), Some(&op.referenced));
        let withheld = match op.value.withheld.as_deref() {
            None | Some("remove") => Withheld::Remove,
            Some("null") => Withheld::Null,
            Some(other) => {
                diags.error(
                    file,
                    at,
                    format!("unknown withheld `{other}` (remove or null)"),
                );
                return None;
            }
        };
        if withheld == Withheld::Null && (kind != OpKind::Read || op.value.tunnel.is_some()) {
            diags.error(
                file,
                at,
                "`withheld: null` applies to reads only: only their records are withheld"
                    .to_string(),
            );
            return None;
        }
        Some(withheld)
    }

    /// `format:` and `objects:` of one operation. `None` after an error was reported.
    fn csv_format(
        &self,
        op: &Spanned<RawOperation>,
        kind: OpKind,
        diags: &mut Diags,
    ) -> Option<(BodyFormat, Vec<usize>)> {
        let o = &op.value;
        let (file, at) = (self.file(), Some(&op.referenced));
        let format = match o.format.as_deref() {
            None => BodyFormat::Json,
            Some(f) => match BodyFormat::from_name(f) {
                Some(f) => f,
                None => {
                    diags.error(file, at, format!("unknown format `{f}` (json or csv)"));
                    return None;
                }
            },
        };
        let message = match (format, &o.objects) {
            (BodyFormat::Json, None) => return Some((format, Vec::new())),
            (BodyFormat::Json, Some(_)) => {
                "`objects` applies to `format: csv` operations only".to_string()
            }
            (BodyFormat::Csv, _) if kind != OpKind::Read || o.tunnel.is_some() => {
                "`format: csv` is supported on reads only (their responses are filtered)"
                    .to_string()
            }
            (BodyFormat::Csv, None) => {
                "a `format: csv` operation needs `objects`: the resources its rows may be"
                    .to_string()
            }
            (BodyFormat::Csv, Some(list)) => match self.objects(list) {
                Ok(objects) => return Some((format, objects)),
                Err(message) => message,
            },
        };
        diags.error(file, at, message);
        None
    }

    /// The resources `objects:` names, by index, or the error message.
    fn objects(&self, list: &[String]) -> Result<Vec<usize>, String> {
        let mut objects = Vec::new();
        for object in list {
            match self.names.iter().position(|n| n == object) {
                Some(i) if !objects.contains(&i) => objects.push(i),
                Some(_) => return Err(format!("`objects` names `{object}` twice")),
                None => {
                    let hint = did_you_mean(object, self.names.iter().copied());
                    return Err(format!("unknown resource `{object}`{hint}"));
                }
            }
        }
        if objects.is_empty() {
            return Err("`objects` is empty".into());
        }
        Ok(objects)
    }

    /// `records:` selectors; a resource with operations and fields needs at least one.
    fn records(&self, name: &SpStr, res: &RawResource, diags: &mut Diags) -> Vec<RecordSelector> {
        let mut records = Vec::new();
        for r in &res.records {
            match RecordSelector::compile(&r.value) {
                Ok(s) => records.push(s),
                Err(e) => diags.error(
                    self.file(),
                    Some(&r.referenced),
                    format!("record selector: {e}"),
                ),
            }
        }
        // A resource without `fields` describes no records (Bulk jobs: all envelope).
        if !res.operations.is_empty()
            && res.records.is_empty()
            && !res.fields.is_empty()
            && !no_records(res)
        {
            diags.error(
                self.file(),
                Some(&name.referenced),
                format!(
                    "resource `{}` has operations but no `records` selectors",
                    name.value
                ),
            );
        }
        records
    }

    /// Classifies the paths of `map` (`fields:` or `envelope:`, called `what`) into `root`.
    fn classify_map(
        &self,
        map: &OrderedMap<SpStr, SpStr>,
        root: &mut FieldNode,
        what: &str,
        resource: &str,
        diags: &mut Diags,
    ) {
        for (path, cat) in map.iter() {
            let source: std::sync::Arc<str> = format!("{resource} {}", path.value).into();
            let Some(c) = category(self.src, cat, self.tax, diags) else {
                continue;
            };
            match parse_field_path(&path.value) {
                Ok(alts) => {
                    for alt in alts {
                        let node = root.entry(&alt);
                        if node.cat.is_some() {
                            diags.error(
                                self.file(),
                                Some(&path.referenced),
                                format!("{what} `{}` is classified twice", path.value),
                            );
                        }
                        node.cat = Some(c);
                        node.source = Some(source.clone());
                    }
                }
                Err(e) => diags.error(
                    self.file(),
                    Some(&path.referenced),
                    format!("{what} path `{}`: {e}", path.value),
                ),
            }
        }
    }

    /// `children:`: paths of `fields` whose values are records of another resource.
    fn children(&self, res: &RawResource, fields: &mut FieldNode, diags: &mut Diags) {
        for (path, child) in res.children.iter() {
            let Some(ci) = self.names.iter().position(|n| *n == child.value) else {
                let hint = did_you_mean(&child.value, self.names.iter().copied());
                diags.error(
                    self.file(),
                    Some(&child.referenced),
                    format!("unknown resource `{}`{hint}", child.value),
                );
                continue;
            };
            match parse_field_path(&path.value) {
                Ok(alts) => {
                    for alt in alts {
                        let node = fields.entry(&alt);
                        if node.cat.is_some() || node.child.is_some() {
                            diags.error(
                                self.file(),
                                Some(&path.referenced),
                                format!("`{}` is both a field and child records", path.value),
                            );
                        }
                        node.child = Some(ci);
                    }
                }
                Err(e) => diags.error(
                    self.file(),
                    Some(&path.referenced),
                    format!("child path: {e}"),
                ),
            }
        }
    }

    /// `consent:`: the signals of the resource's records, by name.
    fn consent(&self, res: &RawResource, diags: &mut Diags) -> FastMap<String, ConsentSignal> {
        let mut consent = FastMap::default();
        for (cname, c) in res.consent.iter() {
            let field = match parse_key_path(&c.value.field) {
                Ok(f) => f,
                Err(e) => {
                    diags.error(
                        self.file(),
                        Some(&c.referenced),
                        format!("consent field: {e}"),
                    );
                    continue;
                }
            };
            let granted_when: Vec<Value> = match &c.value.granted_when {
                Value::Array(a) => a.clone(),
                v => vec![v.clone()],
            };
            if granted_when.is_empty()
                || granted_when
                    .iter()
                    .any(|v| !(v.is_boolean() || v.is_string() || v.is_number()))
            {
                diags.error(
                    self.file(),
                    Some(&c.referenced),
                    "granted_when is a boolean, string or number, or a list of them",
                );
                continue;
            }
            consent.insert(
                cname.value.clone(),
                ConsentSignal {
                    field,
                    granted_when,
                    separator: c.value.separator.clone(),
                },
            );
        }
        consent
    }

    /// `unclassified: keep` (warned: new CRM fields then flow to every purpose) or
    /// `otherwise` (the default).
    fn keep_unclassified(&self, name: &SpStr, res: &RawResource, diags: &mut Diags) -> bool {
        match &res.unclassified {
            None => false,
            Some(u) if u.value == "keep" => {
                diags.warn(
                    self.file(),
                    Some(&u.referenced),
                    format!(
                        "resource `{}` keeps unclassified fields: new or renamed CRM fields will flow to every purpose",
                        name.value
                    ),
                );
                true
            }
            Some(u) if u.value == "otherwise" => false,
            Some(u) => {
                diags.error(
                    self.file(),
                    Some(&u.referenced),
                    "unclassified is `keep` or `otherwise` (the default)",
                );
                false
            }
        }
    }
}
